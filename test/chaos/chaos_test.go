package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// The defaults are the short run inside `make test`; `make chaos` sets longer ones
// through the same CHAOS_* variables. Flags override the variables.
var (
	seed          = flag.Uint64("chaos.seed", envUint("CHAOS_SEED", 0), "seed of the schedule; 0 picks one from the clock (printed)")
	duration      = flag.Duration("chaos.duration", envDuration("CHAOS_DURATION", time.Minute), "how long faults and installs go on")
	faultEvery    = flag.Duration("chaos.fault-every", envDuration("CHAOS_FAULT_EVERY", 4*time.Second), "mean interval between faults")
	installEvery  = flag.Duration("chaos.install-every", envDuration("CHAOS_INSTALL_EVERY", 3*time.Second), "mean interval between installs")
	reinstalls    = flag.Float64("chaos.reinstalls", envFloat("CHAOS_REINSTALLS", 0.3), "share of installs that reinstall an installed account")
	outages       = flag.Int("chaos.outages", int(envUint("CHAOS_OUTAGES", 0)), "API server outages (make chaos: 3)")
	outageMax     = flag.Duration("chaos.outage", envDuration("CHAOS_OUTAGE", 10*time.Second), "length of the first API server outage, the longest")
	settle        = flag.Duration("chaos.settle", envDuration("CHAOS_SETTLE", 100*time.Second), "how long the state may take to converge after the faults stop")
	upgradeFrom   = flag.String("chaos.upgrade-from", os.Getenv("CHAOS_UPGRADE_FROM"), "an older kommo-operator binary the controllers start with; a third into the run they are rolled to this tree's (`make chaos-upgrade`)")
	tokenLifetime = flag.Duration("chaos.token-lifetime", envDuration("CHAOS_TOKEN_LIFETIME", 40*time.Second), "the simulator's access token lifetime: refreshes every ~⅔ of it")
	answerWithin  = flag.Duration("chaos.answer-within", envDuration("CHAOS_ANSWER_WITHIN", 3*time.Second), "Kommo's wait for the webhook's answer to an install")
	keep          = flag.Bool("chaos.keep", os.Getenv("CHAOS_KEEP") != "", "keep the binaries, logs and report even when the run passes")
)

var rootCtx, cancelRoot = context.WithCancel(context.Background())

// TestMain ends every process on SIGINT or SIGTERM instead of leaving them behind.
func TestMain(m *testing.M) {
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // envtest's own chatter; the suite reports what matters
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancelRoot()
	}()
	os.Exit(m.Run())
}

// TestChaos runs one seeded schedule against two controller and two webhook replicas
// and fails on any install lost, refresh token burnt, code exchanged twice, install not
// answered in time, or replica not running at the end.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection: builds the binary and runs the stack for minutes")
	}
	if os.Getenv("CHAOS") != "1" {
		t.Skip("fault injection runs with CHAOS=1: `make chaos`, or `make test TEST_CHAOS=1` for the short run")
	}
	cfg := Config{Seed: *seed, Duration: *duration, FaultEvery: *faultEvery, InstallEvery: *installEvery,
		Reinstalls: *reinstalls, Outages: *outages, OutageMax: *outageMax, Controllers: 2, Webhooks: 2}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	t.Logf("chaos: seed %d (rerun with CHAOS_SEED=%d or -chaos.seed=%d), %s of faults, settle within %s", cfg.Seed, cfg.Seed, cfg.Seed, cfg.Duration, *settle)
	events := Plan(cfg)

	dir, err := os.MkdirTemp("", "kommo-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *keep {
			t.Logf("chaos: binaries, logs, plan and report kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	bins, err := stack.Build(rootCtx, root, dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := stack.Start(rootCtx, stack.Options{
		Binaries: bins, Dir: filepath.Join(dir, "run"), Namespace: "chaos",
		ControllerReplicas: 2, WebhookReplicas: 2, Supervise: true, ControllerUpgradeFrom: *upgradeFrom,
		SimulatorArgs: []string{"--token-lifetime", tokenLifetime.String(), "--refresh-grace"},
		Logf:          func(format string, args ...any) { t.Logf("stack: "+format, args...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the logs, secrets redacted:\n%s", s.LogTails(15))
		}
		if err := s.Stop(); err != nil {
			t.Log(err)
		}
	})
	t.Logf("chaos: built and started in %s", time.Since(began).Round(100*time.Millisecond))
	writePlan(t, filepath.Join(dir, "plan.txt"), cfg, events)

	r := newRun(s, cfg, *answerWithin)
	runStart := time.Now()
	if *upgradeFrom != "" {
		// A rolling upgrade under fire: the old release leads, then this tree takes over.
		go func() {
			select {
			case <-time.After(cfg.Duration / 3):
			case <-rootCtx.Done():
				return
			}
			t.Logf("chaos: %6.1fs rolling upgrade of the controllers from %s", time.Since(runStart).Seconds(), *upgradeFrom)
			if err := s.UpgradeControllers(rootCtx); err != nil {
				t.Errorf("rolling upgrade: %v", err)
				return
			}
			t.Logf("chaos: %6.1fs rolling upgrade done", time.Since(runStart).Seconds())
		}()
	}
	r.execute(rootCtx, t, events)
	faultsEnded := time.Now()
	if err := s.ClearFaults(rootCtx); err != nil {
		t.Errorf("clearing the simulator's faults: %v", err)
	}
	a := r.settle(rootCtx, *settle)
	rep := r.report(rootCtx, a, faultsEnded.Sub(runStart), time.Since(faultsEnded))
	path := filepath.Join(dir, "report.txt")
	_ = os.WriteFile(path, []byte(rep.String()), 0o600)
	for _, line := range rep.Lines() {
		t.Log(line)
	}
	for _, f := range rep.Failures {
		t.Error(f)
	}
	if t.Failed() || *keep {
		if _, err := s.SaveSimCalls(rootCtx); err != nil {
			t.Logf("saving the simulator's call log: %v", err)
		}
	}
}

func writePlan(t *testing.T, path string, cfg Config, events []Event) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%+v\n", cfg)
	for _, e := range events {
		fmt.Fprintln(f, e)
	}
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envUint(name string, def uint64) uint64 {
	if n, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		return n
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return f
	}
	return def
}
