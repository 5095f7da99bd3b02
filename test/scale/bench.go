package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
)

// controllerName is the installation controller's name in controller-runtime's metrics.
const controllerName = "kommoinstallation"

// readyDeadline bounds each wait for the controller; generous for 10,000 on 2 cores.
const readyDeadline = 30 * time.Minute

type bench struct {
	s       *stack.Stack
	c       config
	admin   client.Client // unthrottled
	watcher client.WithWatch
	apiURL  string
	apiHTTP,
	http *http.Client
}

func newBench(s *stack.Stack, c config) (*bench, error) {
	cfg := rest.CopyConfig(s.Env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	admin, err := client.New(cfg, client.Options{Scheme: s.Env.Scheme})
	if err != nil {
		return nil, err
	}
	watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: s.Env.Scheme})
	if err != nil {
		return nil, err
	}
	apiHTTP, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = c.clients
	return &bench{
		s: s, c: c, admin: admin, watcher: watcher, apiURL: strings.TrimSuffix(cfg.Host, "/") + "/metrics", apiHTTP: apiHTTP,
		http: &http.Client{Transport: transport, Timeout: 30 * time.Second},
	}, nil
}

func (b *bench) run(ctx context.Context) error {
	n := b.c.installs
	limit := func(l string) string {
		if l == "" {
			return "none"
		}
		return l + " (the Go runtime held to it less the binary's size and a margin)"
	}
	fmt.Printf("scale: %d installs of distinct accounts, %d concurrent clients, controller flags %q, webhook flags %q, memory limit of the controller %s, of the webhook %s\n",
		n, b.c.clients, b.c.controllerArgs.String(), b.c.webhookArgs.String(), limit(b.c.memoryLimit), limit(b.c.webhookMemoryLimit))

	cpuStart := sampleCPU(b.pids())
	rawCount := min(n, 5000)
	rates, err := b.rawWriteRates(ctx, rawCount, "before")
	if err != nil {
		return err
	}
	cpuRaw := sampleCPU(b.pids())
	raw := rates.secrets()
	fmt.Printf("raw writes/s (same API server, %d clients, %d of each): %s\n", b.c.clients, rawCount, rates)
	fmt.Printf("  a KommoInstallation create costs %.1f× a Secret create; an install's two webhook writes at these rates: %.0f/s\n",
		raw/rates.installations(), rates.webhookWrites())
	fmt.Printf("  CPU meanwhile: %s\n", cpuUse(cpuStart, cpuRaw))

	accounts, codes, err := b.newAccounts(ctx, "acct", n)
	if err != nil {
		return err
	}

	before, err := b.counters(ctx)
	if err != nil {
		return err
	}
	cpuBurst := sampleCPU(b.pids())
	start := time.Now()
	// A CPU profile of the API server over the burst's first seconds (4 s at 1,000, which
	// take 6–7 s on 2 cores).
	burstProfile := inBackground(func() (string, error) {
		return b.apiServerProfile(ctx, "burst", time.Duration(max(1, n/250))*time.Second)
	})
	lat, codesSeen, err := b.burst(ctx, accounts, codes)
	if err != nil {
		return err
	}
	burstTook := time.Since(start)
	cpuBurstEnd := sampleCPU(b.pids())
	slices.Sort(lat)
	rate := float64(len(lat)) / burstTook.Seconds()
	fmt.Printf("webhook: %d redirects in %s: %.0f/s (%.2f× raw Secret creates, %.2f× its two writes at the raw rates), p50 %s, p99 %s, max %s, answers %s\n",
		len(lat), burstTook.Round(time.Millisecond), rate, rate/raw, rate/rates.webhookWrites(), pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1], codesSeen)
	fmt.Printf("  CPU meanwhile: %s\n", cpuUse(cpuBurst, cpuBurstEnd))
	// A process takes one CPU profile at a time: the API server's next waits for this one.
	first := <-burstProfile
	if first.err != nil {
		return first.err
	}
	paths := []string{first.path}

	// And over the first seconds of the controller's catching up (10 s at 1,000, whose
	// installs are all Ready some 30 s after the burst; a minute at 10,000): the API
	// server's CPU, and the controller's, which shares the machine with it.
	catchUp := time.Duration(min(60, max(5, n/100))) * time.Second
	profiles := []<-chan saved{
		inBackground(func() (string, error) { return b.apiServerProfile(ctx, "after-the-burst", catchUp) }),
		inBackground(func() (string, error) { return b.controllerProfile(ctx, "after-the-burst", catchUp) }),
	}
	if err := b.waitReady(ctx, n); err != nil {
		return err
	}
	readyAfter := time.Since(start)
	cpuReady := sampleCPU(b.pids())
	for _, p := range profiles {
		got := <-p
		if got.err != nil {
			return got.err
		}
		paths = append(paths, got.path)
	}
	for _, path := range paths {
		if err := printTop(ctx, path, "cpu", "CPU"); err != nil {
			return err
		}
	}
	after, err := b.counters(ctx)
	if err != nil {
		return err
	}
	writes := after.writes.minus(before.writes)
	createFloor, floor := rates.createFloor(writes), rates.floor(writes)
	fmt.Printf("all %d Ready after %s (%.0f/s): %.2f writes per install (%s) → write floor %s with each write at its own raw rate, %.1f× the floor (%s at the raw Secret create rate, %.1f× that)\n",
		n, readyAfter.Round(time.Millisecond), float64(n)/readyAfter.Seconds(), writes.total()/float64(n), writes.perInstall(n),
		floor.Round(time.Millisecond), readyAfter.Seconds()/floor.Seconds(), createFloor.Round(time.Millisecond), readyAfter.Seconds()/createFloor.Seconds())
	fmt.Printf("  CPU from the burst's end to all Ready: %s\n", cpuUse(cpuBurstEnd, cpuReady))
	d := after.controller.minus(before.controller)
	fmt.Printf("controller API requests per install: %.2f (%s)\n", d.requests/float64(n), perInstall(d.verbs, n))
	fmt.Printf("Kommo calls per install: %.2f (%s)\n", float64(after.calls.total-before.calls.total)/float64(n), after.calls.minus(before.calls).perInstall(n))
	fmt.Printf("Kommo rate while installs were queued: %s\n", after.calls.rate(before.calls.total, b.c.kommoQPS))

	if err := b.waitSteady(ctx, 0); err != nil {
		return err
	}
	if err := b.printMemory(ctx, "steady state"); err != nil {
		return err
	}
	if err := b.resync(ctx, n); err != nil {
		return err
	}
	if err := b.dueRefreshes(ctx, n); err != nil {
		return err
	}
	if err := b.restart(ctx, n+freshInstalls); err != nil {
		return err
	}
	return b.floorAgain(ctx, rawCount, rates, writes, readyAfter)
}

// floorAgain measures the raw write rates once more at the end, when the API server holds
// every installation, and compares the burst's Ready time with the floor from the faster
// of the two measurements of each write: a shared machine's slow minutes must not make the
// floor longer than it is, and Ready look closer to it.
func (b *bench) floorAgain(ctx context.Context, count int, before rawRates, writes writeCounts, readyAfter time.Duration) error {
	cpuStart := sampleCPU(b.pids())
	after, err := b.rawWriteRates(ctx, count, "after")
	if err != nil {
		return err
	}
	fmt.Printf("raw writes/s at the end (%d of each): %s\n  CPU meanwhile: %s\n", count, after, cpuUse(cpuStart, sampleCPU(b.pids())))
	floor := before.fastest(after).floor(writes)
	fmt.Printf("all Ready after %s was %.1f× the write floor (%s) with each write at the faster of its two raw rates\n",
		readyAfter.Round(time.Millisecond), readyAfter.Seconds()/floor.Seconds(), floor.Round(time.Millisecond))
	return nil
}

// benchNamespace holds the integration and its installations; the controller watches it
// alone.
const benchNamespace = "scale"

// newAccounts names n accounts (prefix00000.kommo.com, …) and gets a code for each from
// the simulator, before the clock starts.
func (b *bench) newAccounts(ctx context.Context, prefix string, n int) (accounts, codes []string, err error) {
	accounts = make([]string, n)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("%s%05d.kommo.com", prefix, i)
	}
	codes, err = b.issueCodes(ctx, accounts)
	return accounts, codes, err
}

// issueCodes gets one code per account from the simulator.
func (b *bench) issueCodes(ctx context.Context, accounts []string) ([]string, error) {
	codes := make([]string, len(accounts))
	err := forEach(len(accounts), 16, func(i int) error {
		code, err := b.s.IssueCode(ctx, accounts[i])
		codes[i] = code
		return err
	})
	return codes, err
}

// burst sends every install from c.clients clients at once, as Kommo's servers do (no
// browser headers), and returns each redirect's latency and the answers by status (202:
// the write goes on in the background after the request deadline).
func (b *bench) burst(ctx context.Context, accounts, codes []string) ([]time.Duration, string, error) {
	lat := make([]time.Duration, len(accounts))
	statuses := make([]int, len(accounts))
	err := forEach(len(accounts), b.c.clients, func(i int) error {
		t := time.Now()
		status, err := b.redirect(ctx, accounts[i], codes[i])
		lat[i], statuses[i] = time.Since(t), status
		return err
	})
	if err != nil {
		return nil, "", err
	}
	byStatus := map[string]float64{}
	for _, code := range statuses {
		byStatus[strconv.Itoa(code)]++
	}
	return lat, counts(byStatus), nil
}

// forEach calls do for 0 … n-1 from workers goroutines and returns the first error; once
// one failed, no further call starts.
func forEach(n, workers int, do func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := do(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	err, _ := first.Load().(error)
	return err
}

// redirect sends one install of account as Kommo's servers do (no browser headers) and
// returns the answer's status.
func (b *bench) redirect(ctx context.Context, account, code string) (int, error) {
	u := b.s.RedirectURL(url.Values{"code": {code}, "referer": {account}, "from_widget": {"1"}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("User-Agent", "amoCRM-oAuth-client/1.0")
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("redirect of %s: %w", account, err.(*url.Error).Err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitReady waits until n installations are Ready for their generation: a list, then a
// watch from its version. (A list of 10,000 installations every second would load the
// API server whose pace the benchmark measures.)
func (b *bench) waitReady(ctx context.Context, n int) error {
	var mu sync.Mutex
	ready := map[string]bool{}
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for watchCtx.Err() == nil {
			list := &kommov1.KommoInstallationList{}
			if err := b.admin.List(watchCtx, list, client.InNamespace(b.s.Namespace)); err != nil {
				select { // the poll below reports the wait; retry at its pace
				case <-watchCtx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			mu.Lock()
			for i := range list.Items {
				ready[list.Items[i].Name] = readyNow(&list.Items[i])
			}
			mu.Unlock()
			// Returns when the watch cannot go on from the last version seen: list again.
			b.watchReady(watchCtx, list.ResourceVersion, func(inst *kommov1.KommoInstallation) {
				mu.Lock()
				ready[inst.Name] = readyNow(inst)
				mu.Unlock()
			})
		}
	}()
	return poll(ctx, fmt.Sprintf("%d installations Ready", n), func(ctx context.Context) (bool, string, error) {
		if err := b.s.Crashed(); err != nil {
			return false, "", err
		}
		mu.Lock()
		defer mu.Unlock()
		count := 0
		for _, r := range ready {
			if r {
				count++
			}
		}
		return count >= n, fmt.Sprintf("%d of %d Ready", count, len(ready)), nil
	})
}

// readyNow reports whether inst is Ready for its generation.
func readyNow(inst *kommov1.KommoInstallation) bool {
	c := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && inst.Status.ObservedGeneration == inst.Generation
}

// waitSteady waits until the controller has reconciled at least atLeast times (as its
// metrics count) and its queue is empty with nothing reconciled for two scrapes.
func (b *bench) waitSteady(ctx context.Context, atLeast float64) error {
	last := -1.0
	stable := 0
	return poll(ctx, "the controller's queue to settle", func(ctx context.Context) (bool, string, error) {
		m, err := scrape(ctx, b.http, b.s.ControllerMetricsURL)
		if err != nil {
			return false, err.Error(), nil
		}
		depth := m.sum("workqueue_depth", label("name", controllerName))
		done := m.sum("controller_runtime_reconcile_total", label("controller", controllerName))
		if depth == 0 && done >= atLeast && done == last {
			stable++
		} else {
			stable = 0
		}
		last = done
		return stable >= 2, fmt.Sprintf("queue depth %.0f, %.0f reconciles", depth, done), nil
	})
}

// printMemory prints the controller's RSS (/proc, with its anonymous and file-backed parts)
// and Go heap in use (its metrics).
func (b *bench) printMemory(ctx context.Context, when string) error {
	rss, err := readResidentSet(b.s.ControllerPID())
	if err != nil {
		return err
	}
	m, err := scrape(ctx, b.http, b.s.ControllerMetricsURL)
	if err != nil {
		return err
	}
	heap := m.sum("go_memstats_heap_inuse_bytes", nil)
	goLimit := "none"
	if l := m.sum("go_gc_gomemlimit_bytes", nil); l < math.MaxInt64 {
		goLimit = fmt.Sprintf("%.0f MB", l/1e6)
	}
	fmt.Printf("controller memory at %s: RSS %.0f MB (anonymous %.0f MB, the binary's mapped pages %.0f MB), Go heap in use %.0f MB (%.1f KB RSS per installation), Go memory limit %s\n",
		when, float64(rss.total)/1e6, float64(rss.anon)/1e6, float64(rss.file)/1e6, heap/1e6, float64(rss.total)/1e3/float64(b.c.installs), goLimit)
	// The webhook caches every installation too, under its own memory limit.
	for _, w := range b.s.Webhooks {
		wrss, err := readResidentSet(w.PID())
		if err != nil {
			return err
		}
		fmt.Printf("  webhook RSS %.0f MB (anonymous %.0f MB, the binary's mapped pages %.0f MB)\n",
			float64(wrss.total)/1e6, float64(wrss.anon)/1e6, float64(wrss.file)/1e6)
	}
	return b.heapProfile(ctx, when)
}

// heapProfile saves the controller's heap profile (after a GC) to bin/scale and prints
// its largest entries by live bytes.
func (b *bench) heapProfile(ctx context.Context, when string) error {
	path, err := b.saveProfile(ctx, b.http, b.s.Controllers[0].PprofURL()+"heap?gc=1",
		fmt.Sprintf("controller-heap-%d-%s", b.c.installs, strings.ReplaceAll(when, " ", "-")))
	if err != nil {
		return err
	}
	return printTop(ctx, path, "inuse_space", "live bytes")
}

// apiServerProfile saves a CPU profile of the API server over the next d of a phase and
// returns its path.
func (b *bench) apiServerProfile(ctx context.Context, phase string, d time.Duration) (string, error) {
	u := strings.TrimSuffix(b.apiURL, "/metrics") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))
	return b.saveProfile(ctx, b.apiHTTP, u, fmt.Sprintf("apiserver-cpu-%d-%s", b.c.installs, phase))
}

// controllerProfile saves a CPU profile of the controller over the next d of a phase and
// returns its path.
func (b *bench) controllerProfile(ctx context.Context, phase string, d time.Duration) (string, error) {
	// The answer takes d: longer than b.http allows a scrape.
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	u := b.s.Controllers[0].PprofURL() + fmt.Sprintf("profile?seconds=%d", int(d.Seconds()))
	return b.saveProfile(ctx, &http.Client{Transport: b.http.Transport}, u, fmt.Sprintf("controller-cpu-%d-%s", b.c.installs, phase))
}

// saved is a profile saved in the background: its path, or why not.
type saved struct {
	path string
	err  error
}

// inBackground runs save while a phase is measured. A profile's summary (go tool pprof,
// built on first use) waits until the phase's time and CPU are taken.
func inBackground(save func() (string, error)) <-chan saved {
	ch := make(chan saved, 1)
	go func() {
		path, err := save()
		ch <- saved{path, err}
	}()
	return ch
}

// saveProfile fetches a pprof profile into bin/scale and returns its path.
func (b *bench) saveProfile(ctx context.Context, c *http.Client, u, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s profile: %w", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s profile: %s %v", name, resp.Status, err)
	}
	path := filepath.Join(b.c.profiles, name+".pb.gz")
	return path, os.WriteFile(path, data, 0o644)
}

// printTop prints a saved profile's largest entries by sample.
func printTop(ctx context.Context, path, sample, what string) error {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=12", "-sample_index="+sample, path).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %w", path, err)
	}
	fmt.Printf("  profile %s (%s, largest first):\n", path, what)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		fmt.Println("    " + line)
	}
	return nil
}

// resync changes the KommoIntegration's metadata (nothing is due for any installation)
// and counts what the controller asks of the API server and of Kommo until it settles.
func (b *bench) resync(ctx context.Context, n int) error {
	before, err := b.counters(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.touchIntegration(ctx); err != nil {
		return err
	}
	if err := b.waitSteady(ctx, before.controller.reconciles+float64(n)); err != nil {
		return err
	}
	after, err := b.counters(ctx)
	if err != nil {
		return err
	}
	d := after.controller.minus(before.controller)
	fmt.Printf("resync with nothing due (a KommoIntegration change): %.0f reconciles in %s, %.0f API requests (%.4f per installation; %s), %d Kommo calls\n",
		d.reconciles, since(start), d.requests, d.requests/float64(n), d.byVerb(), after.calls.total-before.calls.total)
	return nil
}

// touchIntegration changes the KommoIntegration's metadata only: every installation of
// it is reconciled, and nothing in their configuration changed.
func (b *bench) touchIntegration(ctx context.Context) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		"scale.kommo-operator.io/touched": time.Now().UTC().Format(time.RFC3339Nano),
	}}})
	in := &kommov1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: b.s.Namespace, Name: b.s.Integration}}
	return b.admin.Patch(ctx, in, client.RawPatch(types.MergePatchType, patch))
}

// restart restarts the controller with every installation Ready and counts what the new
// process asks of the API server and of Kommo until it settles.
func (b *bench) restart(ctx context.Context, n int) error {
	before, err := b.counters(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.s.RestartController(ctx); err != nil {
		return err
	}
	if err := b.waitSteady(ctx, float64(n)); err != nil {
		return err
	}
	took := time.Since(start)
	after, err := b.counters(ctx)
	if err != nil {
		return err
	}
	c := after.controller // the new process's: all of them are the restart's
	fmt.Printf("restart with all Ready: steady again after %s, %.0f reconciles, %.0f API requests (%.4f per installation; %s), %d Kommo calls\n",
		took.Round(time.Millisecond), c.reconciles, c.requests, c.requests/float64(n), c.byVerb(), after.calls.total-before.calls.total)
	return b.printMemory(ctx, "steady state after the restart")
}

// counters are what a phase is measured by, taken before and after it: the API server's
// writes, the Kommo calls the simulator answered, and the controller's own counters.
type counters struct {
	writes     writeCounts
	calls      simCounts
	controller controllerCounts
}

func (b *bench) counters(ctx context.Context) (counters, error) {
	var c counters
	var err error
	if c.writes, err = b.apiWrites(ctx); err != nil {
		return c, err
	}
	if c.calls, err = b.simCalls(ctx); err != nil {
		return c, err
	}
	c.controller, err = b.controllerCounts(ctx)
	return c, err
}

// controllerCounts are the controller's own counters.
type controllerCounts struct {
	reconciles, requests float64
	verbs                map[string]float64
}

func (b *bench) controllerCounts(ctx context.Context) (controllerCounts, error) {
	m, err := scrape(ctx, b.http, b.s.ControllerMetricsURL)
	if err != nil {
		return controllerCounts{}, err
	}
	c := controllerCounts{
		reconciles: m.sum("controller_runtime_reconcile_total", label("controller", controllerName)),
		verbs:      map[string]float64{},
	}
	for _, s := range m {
		if s.name == "rest_client_requests_total" {
			c.requests += s.value
			c.verbs[s.labels["method"]] += s.value
		}
	}
	return c, nil
}

func (c controllerCounts) minus(o controllerCounts) controllerCounts {
	d := controllerCounts{reconciles: c.reconciles - o.reconciles, requests: c.requests - o.requests, verbs: map[string]float64{}}
	for k, v := range c.verbs {
		d.verbs[k] = v - o.verbs[k]
	}
	return d
}

func (c controllerCounts) byVerb() string {
	return counts(c.verbs)
}

// writeCounts are the API server's write requests by verb and resource.
type writeCounts map[string]float64

func (b *bench) apiWrites(ctx context.Context) (writeCounts, error) {
	m, err := scrape(ctx, b.apiHTTP, b.apiURL)
	if err != nil {
		return nil, err
	}
	w := writeCounts{}
	for _, s := range m {
		if s.name != "apiserver_request_total" || s.labels["dry_run"] != "" {
			continue
		}
		switch s.labels["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			continue
		}
		// The Lease is leader election, not install work; the raw namespace is ours.
		if s.labels["resource"] == "leases" {
			continue
		}
		key := s.labels["verb"] + " " + s.labels["resource"]
		if s.labels["subresource"] != "" {
			key += "/" + s.labels["subresource"]
		}
		w[key] += s.value
	}
	return w, nil
}

func (w writeCounts) minus(o writeCounts) writeCounts {
	d := writeCounts{}
	for k, v := range w {
		if v-o[k] > 0 {
			d[k] = v - o[k]
		}
	}
	return d
}

func (w writeCounts) total() float64 {
	t := 0.0
	for _, v := range w {
		t += v
	}
	return t
}

func (w writeCounts) perInstall(n int) string { return perInstall(w, n) }

// simCounts are the simulator's calls by operation.
type simCounts struct {
	total int
	ops   map[string]float64
	calls []kommotest.Call
}

// rate describes the calls after the first from: their mean rate from the first to the
// last, the most in any one second, and the 429s; against budget when it is set.
func (c simCounts) rate(from int, budget float64) string { return rateOf(c.calls[from:], budget) }

// rateOf describes calls: their mean rate from the first to the last, the most in any
// one second, and the 429s; against budget when it is set.
func rateOf(calls []kommotest.Call, budget float64) string {
	if len(calls) < 2 {
		return "too few calls"
	}
	times := make([]time.Time, len(calls))
	limited := 0
	for i, call := range calls {
		times[i] = call.Time
		if call.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	busiest, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= time.Second {
			j++
		}
		busiest = max(busiest, i-j+1)
	}
	mean := float64(len(times)) / times[len(times)-1].Sub(times[0]).Seconds()
	out := fmt.Sprintf("%.1f req/s mean over %s, %d in the busiest second, %d answered 429",
		mean, times[len(times)-1].Sub(times[0]).Round(time.Millisecond), busiest, limited)
	if budget > 0 {
		out += fmt.Sprintf("; %.0f%% of the %g req/s budget", 100*mean/budget, budget)
	}
	return out
}

func (b *bench) simCalls(ctx context.Context) (simCounts, error) {
	calls, err := b.s.SimCalls(ctx)
	if err != nil {
		return simCounts{}, err
	}
	c := simCounts{total: len(calls), ops: map[string]float64{}, calls: calls}
	for _, call := range calls {
		c.ops[call.Op]++
	}
	return c, nil
}

func (c simCounts) minus(o simCounts) writeCounts {
	d := writeCounts{}
	for k, v := range c.ops {
		if v-o.ops[k] > 0 {
			d[k] = v - o.ops[k]
		}
	}
	return d
}

// counts formats counts, largest first.
func counts(m map[string]float64) string { return format(m, 1, 0) }

// perInstall formats counts divided by n, largest first.
func perInstall(m map[string]float64, n int) string { return format(m, n, 2) }

func format(m map[string]float64, n, decimals int) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+strconv.FormatFloat(m[k]/float64(n), 'f', decimals, 64))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// pids names the stack's own processes for sampleCPU.
func (b *bench) pids() map[int]string {
	names := map[int]string{}
	for _, r := range b.s.Webhooks {
		names[r.PID()] = "webhook"
	}
	for _, r := range b.s.Controllers {
		names[r.PID()] = "controller"
	}
	return names
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := min(int(float64(len(sorted))*p), len(sorted)-1)
	return sorted[i].Round(100 * time.Microsecond)
}

// poll runs check every second (a check may list thousands of objects) until it holds,
// fails, or readyDeadline passes, and says what it sees every 30 s of waiting.
func poll(ctx context.Context, what string, check func(context.Context) (bool, string, error)) error {
	start, told := time.Now(), time.Now()
	return stack.PollEvery(ctx, time.Second, readyDeadline, what, func(ctx context.Context) (bool, string, error) {
		ok, seen, err := check(ctx)
		if !ok && err == nil && time.Since(told) >= 30*time.Second {
			fmt.Printf("  waiting for %s for %s: %s\n", what, since(start), seen)
			told = time.Now()
		}
		return ok, seen, err
	})
}

// residentSet is a process's resident memory from /proc: all of it, the anonymous part
// (heap, stacks) and the file-backed part (the binary's mapped pages).
type residentSet struct{ total, anon, file int64 }

// readResidentSet reads VmRSS, RssAnon and RssFile of a process.
func readResidentSet(pid int) (residentSet, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return residentSet{}, err
	}
	var rs residentSet
	fields := map[string]*int64{"VmRSS:": &rs.total, "RssAnon:": &rs.anon, "RssFile:": &rs.file}
	for _, line := range strings.Split(string(data), "\n") {
		for prefix, dst := range fields {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				if err != nil {
					return residentSet{}, err
				}
				*dst = kb * 1024
			}
		}
	}
	if rs.total == 0 {
		return residentSet{}, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rs, nil
}
