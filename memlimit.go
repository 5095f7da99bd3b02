package main

import (
	"fmt"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/api/resource"
)

// memoryLimitEnv carries the container's memory limit: the manifests set it from
// limits.memory (a resourceFieldRef gives bytes).
const memoryLimitEnv = "KOMMO_MEMORY_LIMIT"

// memoryLimitShare is the part of the container's limit the Go runtime is held to. The
// rest is for what the runtime does not count and the container's limit does: the
// binary's mapped pages, the kernel's socket buffers, and the runtime's own overshoot of
// a soft limit. With all of it, the collector would work hard only once the container is
// at its limit already.
const memoryLimitShare = 0.9

// goMemoryLimit is the soft memory limit to give the Go runtime, or 0 for none: nothing
// when GOMEMLIMIT is set (the runtime has taken it) or memoryLimitEnv is not, else
// memoryLimitShare of memoryLimitEnv's quantity.
func goMemoryLimit(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	v := getenv(memoryLimitEnv)
	if v == "" {
		return 0, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 {
		return 0, fmt.Errorf("%s=%q is not a memory quantity, e.g. 256Mi", memoryLimitEnv, v)
	}
	return int64(float64(q.Value()) * memoryLimitShare), nil
}

// applyMemoryLimit sets the runtime's soft memory limit from the environment.
func applyMemoryLimit(getenv func(string) string) error {
	limit, err := goMemoryLimit(getenv)
	if err == nil && limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return err
}
