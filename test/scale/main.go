// Command scale is the scale benchmark (`make bench-scale`, part of `make bench`): the
// operator's real binary as processes (test/e2e/stack), the simulator as a process with
// Kommo's limit lifted, the real API server, and a migration's burst of installs of
// distinct accounts sent to the webhook by many concurrent clients. It prints ratios and
// counts, never a pass or fail:
//
//   - the raw Secret create rate of the same API server, measured in the same run, and
//     the webhook's redirects per second as a ratio of it, with p50 and p99 latency;
//   - the cores each process used meanwhile (from /proc) and a CPU profile of the API
//     server during the burst, kept in bin/scale;
//   - how long until every installation is Ready, against the API server's write floor
//     (the writes an install needs, counted from apiserver_request_total, at the raw rate);
//   - Kommo calls per install, their rate (mean and busiest second, 429s), the
//     controller's RSS and Go heap at steady state, with the heap profile's largest
//     entries (the profiles are kept in bin/scale for `go tool pprof`);
//   - the API requests and Kommo calls per installation of a resync with nothing due (a
//     change to the KommoIntegration) and of a controller restart with all Ready;
//   - every installation's refresh due at once, with fresh installs sent meanwhile: their
//     time to Ready (p50, p99), the Kommo rate while the backlog drains, and how evenly
//     the next refreshes are planned (the busiest minute against the mean).
//
// SCALE_INSTALLS (or -installs) sets the size: 1,000 by default, 10,000 for the full run.
// -kommo-qps 7 runs with Kommo's real budget instead (`make bench-budget`);
// -controller-memory-limit 150Mi gives the controller the KOMMO_MEMORY_LIMIT a pod with
// that memory limit gets from the manifests; -webhook-memory-limit the webhook.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// repeated is a flag that may be given more than once.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

type config struct {
	installs, clients int
	kommoQPS          float64
	dir               string
	profiles          string // where heap profiles go: bin/scale of the tree
	controllerArgs    repeated
	webhookArgs       repeated
	// memoryLimit and webhookMemoryLimit are the containers' memory limits the run stands
	// for: the manifests give the process KOMMO_MEMORY_LIMIT from it; "" sets none.
	memoryLimit, webhookMemoryLimit string
}

func main() {
	var c config
	flag.IntVar(&c.installs, "installs", envInt("SCALE_INSTALLS", 1000), "Installs of distinct accounts to send (env SCALE_INSTALLS).")
	flag.IntVar(&c.clients, "clients", envInt("SCALE_CLIENTS", 100), "Concurrent clients sending them (env SCALE_CLIENTS).")
	flag.Float64Var(&c.kommoQPS, "kommo-qps", 0, "Kommo's limit, in the simulator and the controller's --kommo-qps; 0 lifts it (7 is Kommo's).")
	flag.StringVar(&c.dir, "dir", "", "Where binaries, kubeconfigs and logs go; a temporary directory when empty.")
	flag.Var(&c.controllerArgs, "controller-flag", "A flag for the controller, e.g. --max-concurrent-reconciles=8 (repeatable).")
	flag.Var(&c.webhookArgs, "webhook-flag", "A flag for the webhook, e.g. --kube-api-qps=100 (repeatable).")
	flag.StringVar(&c.memoryLimit, "controller-memory-limit", os.Getenv("SCALE_CONTROLLER_MEMORY_LIMIT"),
		"The controller container's limits.memory to stand for, e.g. 150Mi, given as the manifests give it: the runtime holds itself to it less the binary and a margin (env SCALE_CONTROLLER_MEMORY_LIMIT).")
	flag.StringVar(&c.webhookMemoryLimit, "webhook-memory-limit", os.Getenv("SCALE_WEBHOOK_MEMORY_LIMIT"),
		"The same for the webhook container, e.g. 128Mi, the manifests' default (env SCALE_WEBHOOK_MEMORY_LIMIT).")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // envtest's own chatter; the benchmark prints what it measures

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.installs < 1 || c.clients < 1 {
		return fmt.Errorf("-installs and -clients must be positive")
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "kommo-scale-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	c.profiles = filepath.Join(root, "bin", "scale")
	if err := os.MkdirAll(c.profiles, 0o755); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Printf("  "+format+"\n", args...)
	}
	logf("building the operator and the simulator")
	bins, err := stack.Build(ctx, root, filepath.Join(c.dir, "bin"))
	if err != nil {
		return err
	}
	// As an operator team would for a migration: the per-IP limit off (every client is
	// 127.0.0.1 here), the pending cap and each IP's share of it above the burst, and
	// Kommo's limit lifted on both sides.
	capacity := strconv.Itoa(c.installs + c.clients)
	controllerEnv, err := memoryLimitEnv("-controller-memory-limit", c.memoryLimit)
	if err != nil {
		return err
	}
	webhookEnv, err := memoryLimitEnv("-webhook-memory-limit", c.webhookMemoryLimit)
	if err != nil {
		return err
	}
	simQPS, kommoQPS := "-1", "0"
	if c.kommoQPS > 0 {
		simQPS = strconv.FormatFloat(c.kommoQPS, 'f', -1, 64)
		kommoQPS = simQPS
	}
	s, err := stack.Start(ctx, stack.Options{
		Binaries:      bins,
		Dir:           filepath.Join(c.dir, "run"),
		Namespace:     benchNamespace,
		LogLevel:      "info",
		Logf:          logf,
		SimulatorArgs: []string{"--qps", simQPS},
		// The benchmark's namespace only: the raw measurements' objects are not its work.
		ControllerArgs:    append([]string{"--kommo-qps", kommoQPS, "--watch-namespace", benchNamespace}, c.controllerArgs...),
		ControllerMetrics: true,
		ControllerPprof:   true,
		ControllerEnv:     controllerEnv,
		WebhookEnv:        webhookEnv,
		WebhookArgs: append([]string{"--rate-limit", "0",
			"--max-pending-installations", capacity, "--max-pending-installations-per-ip", capacity}, c.webhookArgs...),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
		}
	}()
	b, err := newBench(s, c)
	if err != nil {
		return err
	}
	return b.run(ctx)
}

// memoryLimitEnv is the environment a container with memory limit limit ("": none) gets
// from the manifests: KOMMO_MEMORY_LIMIT in bytes, as the kubelet fills a
// resourceFieldRef of limits.memory.
func memoryLimitEnv(flagName, limit string) ([]string, error) {
	if limit == "" {
		return nil, nil
	}
	q, err := resource.ParseQuantity(limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return []string{"KOMMO_MEMORY_LIMIT=" + strconv.FormatInt(q.Value(), 10)}, nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }
