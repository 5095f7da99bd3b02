package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
)

// sent is one install as Kommo sent it: once, to whichever webhook replica the router
// picked, waiting answerWithin for the answer.
type sent struct {
	account string
	code    string
	seq     int // the simulator's issue order of the code
	reinstall,
	duringOutage bool
	delivery stack.Delivery
	err      error
	answered bool // 2xx within answerWithin
}

// window is an API server outage as it happened.
type window struct {
	start, end time.Time
	// controllerLines is how many lines the controllers logged meanwhile.
	controllerLines int
	err             error
}

type run struct {
	s            *stack.Stack
	cfg          Config
	answerWithin time.Duration
	rng          *rand.Rand

	mu       sync.Mutex
	installs []*sent
	outages  []window
	outage   bool           // the API server is down now
	kills    []time.Time    // when controllers were SIGKILLed
	applied  map[string]int // faults applied, by kind
	skipped  map[string]int // faults that found nothing to act on
	wg       sync.WaitGroup
}

func newRun(s *stack.Stack, cfg Config, answerWithin time.Duration) *run {
	return &run{s: s, cfg: cfg, answerWithin: answerWithin, rng: rand.New(rand.NewPCG(cfg.Seed, 1)),
		applied: map[string]int{}, skipped: map[string]int{}}
}

// account is the host of the plan's account i.
func account(i int) string { return fmt.Sprintf("shop-%03d.kommo.com", i) }

// execute runs the events at their times; installs and outages run alongside the rest.
// It returns once every event has ended.
func (r *run) execute(ctx context.Context, t *testing.T, events []Event) {
	start := time.Now()
	for _, e := range events {
		// Waiting for the schedule's next instant is the fault plan, not synchronisation.
		select {
		case <-time.After(time.Until(start.Add(e.At))):
		case <-ctx.Done():
			return
		}
		t.Logf("chaos: %s", e)
		switch e.Kind {
		case Install, Reinstall:
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.install(ctx, t, e) }()
		case APIOutage:
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.apiOutage(ctx, e) }()
		default:
			r.fault(ctx, t, e)
		}
	}
	select {
	case <-time.After(time.Until(start.Add(r.cfg.Duration))):
	case <-ctx.Done():
	}
	r.wg.Wait()
}

func (r *run) install(ctx context.Context, t *testing.T, e Event) {
	in := &sent{account: account(e.Target), reinstall: e.Kind == Reinstall}
	in.code, in.err = r.s.IssueCode(ctx, in.account)
	if in.err == nil {
		var cs kommotest.CodeStatus
		cs, in.err = r.s.SimCodeStatus(ctx, in.code)
		in.seq = cs.Seq
	}
	if in.err == nil {
		r.mu.Lock()
		in.duringOutage = r.outage
		r.mu.Unlock()
		q := url.Values{"code": {in.code}, "referer": {in.account}, "from_widget": {"1"}}
		kommo, cancel := context.WithTimeout(ctx, r.answerWithin)
		in.delivery, in.err = r.s.Deliver(kommo, "/kommo/"+r.s.Namespace+"/"+r.s.Integration+"/redirect?"+q.Encode())
		cancel()
		in.answered = in.err == nil && in.delivery.Status/100 == 2
		r.mu.Lock()
		in.duringOutage = in.duringOutage || r.outage
		r.mu.Unlock()
	}
	if !in.answered {
		t.Logf("chaos: install of %s not answered 2xx within %s: status %d from %s, %v", in.account, r.answerWithin, in.delivery.Status, in.delivery.Replica, in.err)
	}
	if e.LeaderAfter > 0 {
		// The schedule's delay puts the signal inside the leader's exchange of this code.
		select {
		case <-time.After(e.LeaderAfter):
		case <-ctx.Done():
		}
		kind := TermMidInstall
		if e.LeaderKill {
			kind = KillMidInstall
		}
		r.signalController(ctx, kind, -1, e.LeaderKill)
	}
	r.mu.Lock()
	r.installs = append(r.installs, in)
	r.mu.Unlock()
}

func (r *run) apiOutage(ctx context.Context, e Event) {
	before := r.controllerLogLines()
	r.mu.Lock()
	r.outage = true
	r.mu.Unlock()
	w := window{start: time.Now()}
	w.err = r.s.APIServerOutage(ctx, e.Length)
	w.end = time.Now()
	w.controllerLines = r.controllerLogLines() - before
	r.mu.Lock()
	r.outage = false
	r.outages = append(r.outages, w)
	r.applied[e.Kind]++
	r.mu.Unlock()
}

// fault applies a process or Kommo fault.
func (r *run) fault(ctx context.Context, t *testing.T, e Event) {
	var err error
	applied := true
	switch e.Kind {
	case KillController, TermController:
		r.signalController(ctx, e.Kind, e.Target, e.Kind == KillController)
		return
	case TermWebhook:
		// A drain or a rollout: the PodDisruptionBudget (minAvailable 1) and the rollout's
		// maxUnavailable 0 never take the last ready replica.
		w := r.s.Webhooks[e.Target]
		if !w.Stats().Running || !r.othersReady(w) {
			applied = false
			break
		}
		w.Term()
	case DropRefresh:
		err = r.s.InjectFault(ctx, kommotest.Fault{Op: "refresh", DropResponse: true, Times: e.Times})
	case Kommo5xx:
		err = r.s.InjectFault(ctx, kommotest.Fault{Status: e.Status, Times: e.Times})
	case Kommo429:
		err = r.s.InjectFault(ctx, kommotest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Duration(1+e.Times) * time.Second, Times: e.Times})
	case KommoLatency:
		err = r.s.InjectFault(ctx, kommotest.Fault{Latency: e.Length, Times: e.Times})
	}
	if err != nil {
		t.Errorf("chaos: %s: %v", e, err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if applied {
		r.applied[e.Kind]++
	} else {
		r.skipped[e.Kind]++ // nothing running, or the disruption budget forbids it
	}
}

// signalController sends SIGKILL (kill) or SIGTERM to a controller replica (-1: the
// leader), counting it under kind and remembering when a SIGKILL landed.
func (r *run) signalController(ctx context.Context, kind string, target int, kill bool) {
	c := r.controller(ctx, target)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c == nil || !c.Stats().Running {
		r.skipped[kind]++
		return
	}
	if kill {
		c.Kill()
		r.kills = append(r.kills, time.Now())
	} else {
		c.Term()
	}
	r.applied[kind]++
}

// controller resolves a target: -1 is the replica that leads now (any running one when
// none says so).
func (r *run) controller(ctx context.Context, target int) *stack.Replica {
	if target >= 0 {
		return r.s.Controllers[target]
	}
	var running []*stack.Replica
	for _, c := range r.s.Controllers {
		if c.IsLeader(ctx) {
			return c
		}
		if c.Stats().Running {
			running = append(running, c)
		}
	}
	if len(running) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return running[r.rng.IntN(len(running))]
}

func (r *run) controllerLogLines() int {
	n := 0
	for _, c := range r.s.Controllers {
		data, _ := os.ReadFile(c.LogPath)
		n += strings.Count(string(data), "\n")
	}
	return n
}

// othersReady: every webhook replica but w passes its readiness probe.
func (r *run) othersReady(w *stack.Replica) bool {
	for _, o := range r.s.Webhooks {
		if o != w && !o.Ready() {
			return false
		}
	}
	return true
}
