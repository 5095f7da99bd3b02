// Package chaos is the operator's fault-injection suite: two leader-elected controller
// replicas and two webhook replicas, the real binary as processes on a real API server
// (test/e2e/stack), and a seeded random schedule of process kills, API server outages,
// Kommo faults, installs and reinstalls. Afterwards it audits what Kommo (the simulator)
// and the cluster hold: no install answered 2xx lost, no refresh token burnt, no code
// exchanged twice. `make chaos` runs it for minutes; `make test` runs it briefly.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Kinds of events in a plan.
const (
	KillController = "controller-sigkill"
	// KillMidInstall and TermMidInstall signal the leader just after an install was
	// answered, while it exchanges the code: an Install or Reinstall with
	// LeaderAfter set.
	KillMidInstall  = "controller-sigkill-mid-install"
	TermMidInstall  = "controller-sigterm-mid-install"
	TermController  = "controller-sigterm"
	TermWebhook     = "webhook-sigterm"
	APIOutage       = "apiserver-outage"
	DropRefresh     = "kommo-drop-refresh-response"
	Kommo5xx        = "kommo-5xx"
	Kommo429        = "kommo-429"
	KommoLatency    = "kommo-latency"
	Install         = "install"
	Reinstall       = "reinstall"
	outageMinLength = 5 * time.Second
)

// Config shapes a plan.
type Config struct {
	Seed uint64
	// Duration is how long faults and installs go on.
	Duration time.Duration
	// FaultEvery and InstallEvery are the mean intervals between faults and between
	// installs (exponentially distributed); Reinstalls is the share of installs that
	// reinstall an account already installed.
	FaultEvery, InstallEvery time.Duration
	Reinstalls               float64
	// Outages is how many API server outages; the first lasts OutageMax, the others
	// between 5 s and OutageMax. Each ends by Duration − 10 s.
	Outages   int
	OutageMax time.Duration
	// Controllers and Webhooks are the replica counts targets are drawn from.
	Controllers, Webhooks int
}

// Event is one step of a plan.
type Event struct {
	At   time.Duration // from the start of the run
	Kind string
	// Target: the replica (process kinds; -1 for a controller means the leader), or the
	// account index (installs).
	Target int
	// Length of an outage or of injected latency; Status of a 5xx; Times a fault hits.
	Length time.Duration
	Status int
	Times  int
	// LeaderAfter, on an install: SIGTERM the leader this long after the answer, or
	// SIGKILL it when LeaderKill is set.
	LeaderAfter time.Duration
	LeaderKill  bool
}

func (e Event) String() string {
	s := fmt.Sprintf("%7.1fs %s", e.At.Seconds(), e.Kind)
	switch e.Kind {
	case KillController, TermController:
		if e.Target < 0 {
			return s + " leader"
		}
		return s + fmt.Sprintf(" #%d", e.Target)
	case TermWebhook:
		return s + fmt.Sprintf(" #%d", e.Target)
	case Install, Reinstall:
		s += fmt.Sprintf(" account %d", e.Target)
		if e.LeaderAfter > 0 {
			s += fmt.Sprintf(", then %s the leader %s after the answer", map[bool]string{true: "SIGKILL", false: "SIGTERM"}[e.LeaderKill], e.LeaderAfter)
		}
		return s
	case APIOutage, KommoLatency:
		return s + fmt.Sprintf(" %s ×%d", e.Length, max(1, e.Times))
	case Kommo5xx:
		return s + fmt.Sprintf(" %d ×%d", e.Status, e.Times)
	}
	return s + fmt.Sprintf(" ×%d", e.Times)
}

// midInstallKills is the share of installs followed by a signal to the leader, one in
// three a SIGKILL.
const midInstallKills = 0.15

// faultWeights: how often each fault is drawn, relative to the others.
var faultWeights = []struct {
	kind   string
	weight int
}{
	{KillController, 3}, {TermController, 2}, {TermWebhook, 2},
	{DropRefresh, 3}, {Kommo5xx, 2}, {Kommo429, 2}, {KommoLatency, 2},
}

// Plan is the schedule of a run: the same Config gives the same events.
func Plan(c Config) []Event {
	rng := rand.New(rand.NewPCG(c.Seed, 0x6b6f6d6d6f))
	var events []Event
	exp := func(mean time.Duration) time.Duration { return time.Duration(rng.ExpFloat64() * float64(mean)) }

	installed := 0
	for at := exp(c.InstallEvery) / 2; at < c.Duration; at += exp(c.InstallEvery) {
		e := Event{At: at, Kind: Install, Target: installed}
		if installed > 0 && rng.Float64() < c.Reinstalls {
			e.Kind, e.Target = Reinstall, rng.IntN(installed)
		} else {
			installed++
		}
		if rng.Float64() < midInstallKills {
			e.LeaderAfter = time.Duration(20+rng.IntN(480)) * time.Millisecond
			e.LeaderKill = rng.IntN(3) == 0
		}
		events = append(events, e)
	}

	total := 0
	for _, w := range faultWeights {
		total += w.weight
	}
	for at := exp(c.FaultEvery); at < c.Duration; at += exp(c.FaultEvery) {
		n := rng.IntN(total)
		kind := ""
		for _, w := range faultWeights {
			if n < w.weight {
				kind = w.kind
				break
			}
			n -= w.weight
		}
		e := Event{At: at, Kind: kind, Times: 1 + rng.IntN(2)}
		switch kind {
		case KillController, TermController:
			e.Target = rng.IntN(c.Controllers+1) - 1 // -1: the leader, as likely as any one replica
			if rng.IntN(2) == 0 {
				e.Target = -1 // and more: the leader's death is the one that hands over
			}
		case TermWebhook:
			e.Target = rng.IntN(c.Webhooks)
		case Kommo5xx:
			e.Status = []int{500, 502, 503, 504}[rng.IntN(4)]
		case KommoLatency:
			e.Length = time.Duration(500+rng.IntN(4500)) * time.Millisecond
		}
		events = append(events, e)
	}

	// Outages: the first as long as allowed, spread over the run, never overlapping.
	end := c.Duration - 10*time.Second
	for i := 0; i < c.Outages; i++ {
		length := c.OutageMax
		if i > 0 {
			length = outageMinLength + time.Duration(rng.Int64N(int64(max(1, c.OutageMax-outageMinLength))))
		}
		slot := end / time.Duration(c.Outages)
		room := slot - length
		if room <= 0 {
			break
		}
		at := slot*time.Duration(i) + time.Duration(rng.Int64N(int64(room)))
		events = append(events, Event{At: at, Kind: APIOutage, Length: length})
	}
	slices.SortStableFunc(events, func(a, b Event) int { return int(a.At - b.At) })
	return events
}

// Count returns how many events of each kind a plan holds.
func Count(events []Event) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		n[e.Kind]++
		switch {
		case e.LeaderAfter > 0 && e.LeaderKill:
			n[KillMidInstall]++
		case e.LeaderAfter > 0:
			n[TermMidInstall]++
		}
	}
	return n
}
