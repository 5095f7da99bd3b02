package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/api/resource"
)

// memoryLimitEnv carries the container's memory limit: the manifests set it from
// limits.memory (a resourceFieldRef gives bytes).
const memoryLimitEnv = "KOMMO_MEMORY_LIMIT"

// The container's limit counts the pages of the binary the process has mapped (its page
// cache is charged to the container), which the Go runtime does not count. So the runtime
// is held to what is left of the limit once the whole binary is set aside, less a margin
// for the rest the runtime does not count: the kernel's socket buffers and the runtime's
// own overshoot of a soft limit. Held to more, the collector would work hard only once the
// container is at its limit, where the kernel evicts the binary's own pages and the
// process thrashes.
const (
	// memoryLimitMargin is the part of what is left the runtime leaves alone.
	memoryLimitMargin = 0.1
	// memoryLimitFloor is the least part of the limit the runtime gets, for a limit that
	// is barely larger than the binary.
	memoryLimitFloor = 0.25
)

// goMemoryLimit is the soft memory limit to give the Go runtime, or 0 for none: nothing
// when GOMEMLIMIT is set (the runtime has taken it) or memoryLimitEnv is not; else
// memoryLimitEnv's quantity less binarySize (the executable's size in bytes), less
// memoryLimitMargin of the rest, and at least memoryLimitFloor of the quantity.
func goMemoryLimit(getenv func(string) string, binarySize int64) (int64, error) {
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
	limit := q.Value()
	return max(int64(float64(limit-binarySize)*(1-memoryLimitMargin)), int64(float64(limit)*memoryLimitFloor)), nil
}

// applyMemoryLimit sets the runtime's soft memory limit from the environment and the size
// of the running executable (0 when it cannot be found: then only the margin is left).
func applyMemoryLimit(getenv func(string) string) error {
	limit, err := goMemoryLimit(getenv, executableSize())
	if err == nil && limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return err
}

// executableSize is the size of the running executable's file, or 0 when unknown.
func executableSize() int64 {
	path, err := os.Executable()
	if err != nil {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// runtimeMemoryLimit is the runtime's soft memory limit for the start-up log: bytes, or
// "none".
func runtimeMemoryLimit() string {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return resource.NewQuantity(l, resource.BinarySI).String()
	}
	return "none"
}
