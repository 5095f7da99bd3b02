package stack

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Supervision, like a Deployment's: a replica whose process the stack signalled is
// replaced after replaceDelay (a new pod); one that exited on its own is restarted with
// kubelet's crash-loop backoff, scaled down, reset after it has run for crashReset.
// A replacement pod needs the API server (the ReplicaSet controller, the scheduler and
// the kubelet all do), so it waits for an outage to end; a crashed container is restarted
// by its kubelet alone.
const (
	replaceDelay    = 500 * time.Millisecond
	crashBackoff    = time.Second
	crashBackoffMax = 16 * time.Second
	crashReset      = time.Minute
)

// terminationGrace is how long Term waits before SIGKILL: the manifests'
// terminationGracePeriodSeconds of each component.
var terminationGrace = map[string]time.Duration{"controller": 90 * time.Second, "webhook": 30 * time.Second}

// Replica is one replica of the controller or the webhook: a slot whose process the
// stack starts, signals and, when Options.Supervise is set, starts again.
type Replica struct {
	// Name is e.g. "controller-1"; its log is LogPath, appended to across restarts.
	Name    string
	LogPath string

	component string
	s         *Stack
	args      func(r *Replica) []string
	// binary overrides Options.Binaries.Operator for this replica (an older release during
	// a rolling upgrade); "" runs the tree's.
	binary string

	mu        sync.Mutex
	proc      *process
	bind      string // the webhook's public address
	probe     string
	metrics   string // the controller's plain-HTTP metrics address
	pprof     string // the controller's /debug/pprof address (Options.ControllerPprof)
	ready     bool   // the last readiness probe answered 200
	signalled bool   // the stack signalled the current process: its exit is a replacement
	retired   bool
	upSince   time.Time
	restarts  int
	crashes   int
}

// ReplicaStats is what became of a replica's processes.
type ReplicaStats struct {
	Name string
	// Restarts counts processes started after the first; Crashes those that ended
	// without being signalled by the stack (e.g. a controller that lost its Lease).
	Restarts, Crashes int
	Running           bool
}

// URL is the webhook replica's base URL (empty for a controller).
func (r *Replica) URL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bind == "" {
		return ""
	}
	return "http://" + r.bind
}

// MetricsURL is the controller replica's plain-HTTP /metrics (empty for a webhook).
func (r *Replica) MetricsURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.component != "controller" {
		return ""
	}
	return "http://" + r.metrics + "/metrics"
}

// PprofURL is the controller replica's /debug/pprof/ base when Options.ControllerPprof
// is set (empty otherwise).
func (r *Replica) PprofURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.component != "controller" || !r.s.opts.ControllerPprof {
		return ""
	}
	return "http://" + r.pprof + "/debug/pprof/"
}

// restart stops the replica's process (SIGTERM, SIGKILL after grace), as a rollout does,
// and starts a new one, waiting until it is ready.
func (r *Replica) restart(ctx context.Context, grace time.Duration) error {
	r.mu.Lock()
	p := r.proc
	r.signalled = true
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s was never started", r.Name)
	}
	p.stop(grace)
	return r.start(ctx, true)
}

// PID is the process id of the replica's current process (the leader of its process
// group); 0 when none runs.
func (r *Replica) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if done, _ := r.proc.exited(); done {
		return 0
	}
	return r.proc.cmd.Process.Pid
}

// Stats reports the replica's restarts and crashes so far.
func (r *Replica) Stats() ReplicaStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	done, _ := r.proc.exited()
	return ReplicaStats{Name: r.Name, Restarts: r.restarts, Crashes: r.crashes, Running: !done}
}

// Kill sends SIGKILL to the replica's process group: a node lost, an OOM kill.
func (r *Replica) Kill() { r.signal(true) }

// Term sends SIGTERM, as the kubelet does when a pod is deleted (a rollout, a drain),
// and SIGKILL if the process is still running after the manifests' grace period.
func (r *Replica) Term() {
	p := r.signal(false)
	if p == nil {
		return
	}
	go func() {
		select {
		case <-p.done:
		case <-time.After(terminationGrace[r.component]):
			signalGroup(p.cmd.Process.Pid, sigKill)
		}
	}()
}

// signal sends SIGKILL (kill) or SIGTERM to the running process, marking its exit as
// expected; nil when none runs.
func (r *Replica) signal(kill bool) *process {
	r.mu.Lock()
	defer r.mu.Unlock()
	if done, _ := r.proc.exited(); done {
		return nil
	}
	r.signalled = true
	sig := sigTerm
	if kill {
		sig = sigKill
	}
	signalGroup(r.proc.cmd.Process.Pid, sig)
	return r.proc
}

// Ready reports the replica's last readiness probe.
func (r *Replica) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// IsLeader reports whether the controller replica says it holds the Lease (its
// leader_election_master_status metric).
func (r *Replica) IsLeader(ctx context.Context) bool {
	r.mu.Lock()
	addr := r.metrics
	r.mu.Unlock()
	if addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// start starts a process on fresh ports. When wait is set it waits for /readyz and
// retries a lost port race; the supervisor does not wait, like a kubelet.
func (r *Replica) start(ctx context.Context, wait bool) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := r.pickPorts(); err != nil {
			return err
		}
		r.mu.Lock()
		bin := r.binary
		r.mu.Unlock()
		if bin == "" {
			bin = r.s.opts.Binaries.Operator
		}
		env := r.s.opts.WebhookEnv
		if r.component == "controller" {
			env = r.s.opts.ControllerEnv
		}
		p, err := startProcess(r.Name, r.LogPath, bin, env, r.args(r), nil)
		if err != nil {
			return err
		}
		r.mu.Lock()
		if r.retired {
			r.mu.Unlock()
			p.stop(time.Second)
			return fmt.Errorf("%s was stopped", r.Name)
		}
		r.proc, r.upSince, r.ready = p, time.Now(), false
		probe := r.probe
		r.mu.Unlock()
		if !wait {
			return nil
		}
		lastErr = p.waitHTTP(ctx, "http://"+probe+"/readyz", Deadline)
		if lastErr == nil {
			return nil
		}
		if done, _ := p.exited(); !done || !addrInUse(r.LogPath) {
			return lastErr
		}
	}
	return lastErr
}

func (r *Replica) pickPorts() error {
	addrs := make([]string, 3)
	for i := range addrs {
		a, err := FreeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probe, r.metrics = addrs[0], addrs[1]
	if r.component == "webhook" {
		r.bind = addrs[2]
	} else {
		r.pprof = addrs[2]
	}
	return nil
}

// supervise restarts the replica's process whenever it ends, until the replica is retired.
func (r *Replica) supervise(ctx context.Context) {
	failures := 0
	for {
		r.mu.Lock()
		p := r.proc
		r.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			return
		}
		r.mu.Lock()
		if r.retired {
			r.mu.Unlock()
			return
		}
		crashed := !r.signalled
		r.signalled = false
		if crashed {
			r.crashes++
			if time.Since(r.upSince) > crashReset {
				failures = 0
			}
		}
		r.mu.Unlock()
		delay := replaceDelay
		if crashed {
			delay = min(crashBackoff<<failures, crashBackoffMax)
			failures++
			r.s.opts.Logf("%s exited on its own (%v); restarting in %s", r.Name, p.err, delay)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		for !crashed && r.s.APIServerDown() {
			select {
			case <-time.After(200 * time.Millisecond): // poll interval
			case <-ctx.Done():
				return
			}
		}
		r.mu.Lock()
		retired := r.retired
		r.mu.Unlock()
		if retired {
			return
		}
		if err := r.start(ctx, false); err != nil {
			if ctx.Err() == nil {
				r.s.opts.Logf("%s: %v", r.Name, err)
			}
			return
		}
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
	}
}

// probeReadiness keeps Ready current, every probeInterval, as a kubelet's readiness
// probe feeds a Service's endpoints.
func (r *Replica) probeReadiness(ctx context.Context) {
	const probeInterval = 500 * time.Millisecond
	client := &http.Client{Timeout: time.Second}
	for {
		r.mu.Lock()
		probe, p := r.probe, r.proc
		r.mu.Unlock()
		ready := false
		if done, _ := p.exited(); !done {
			if resp, err := client.Get("http://" + probe + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
		}
		r.mu.Lock()
		if r.proc == p {
			r.ready = ready
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(probeInterval):
		}
	}
}

// retire stops the replica for good: SIGTERM, a second SIGTERM after a second, SIGKILL
// after grace.
func (r *Replica) retire(grace time.Duration) {
	r.mu.Lock()
	r.retired = true
	r.mu.Unlock()
	// A process the supervisor starts from now on stops itself (see start).
	var stopped *process
	for {
		r.mu.Lock()
		p := r.proc
		r.mu.Unlock()
		if p == nil || p == stopped {
			return
		}
		p.stop(grace)
		stopped = p
	}
}

// crashErr reports an unsupervised replica whose process ended unasked.
func (r *Replica) crashErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.retired || r.s.opts.Supervise {
		return nil
	}
	if done, err := r.proc.exited(); done && !r.signalled {
		return fmt.Errorf("%s exited: %v (log %s)", r.Name, err, r.LogPath)
	}
	return nil
}
