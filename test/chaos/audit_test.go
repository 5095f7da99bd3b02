package chaos

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// maxOutageLogRate is the most log lines a second the controllers may write, together,
// while the API server is down: more is a hot loop.
const maxOutageLogRate = 50

// verdict is what one account's state says after the run.
type verdict struct {
	account string
	latest  int // seq of the last install sent for it
	// lost: the latest install is not what the installation works with; dead: its token
	// Secret holds a refresh token Kommo no longer accepts; window: lost to a SIGKILL
	// inside the code's one exchange, which nothing can recover (Kommo has no grace
	// rule for codes).
	lost, dead, window bool
	// grantMissing: the token Secret does not hold the latest install's grant.
	grantMissing bool
	why          string
}

type audit struct {
	verdicts []verdict
	down     []string // replicas not running
	settled  time.Duration
}

func (a audit) ok() bool {
	for _, v := range a.verdicts {
		if (v.lost && !v.window) || v.dead {
			return false
		}
	}
	return len(a.down) == 0
}

// settle audits, once a second, until everything is as it should be or timeout passes,
// and returns the last audit.
func (r *run) settle(ctx context.Context, timeout time.Duration) audit {
	began := time.Now()
	tick := time.NewTicker(time.Second) // paces the audits; each one reads everything
	defer tick.Stop()
	for {
		a := r.audit(ctx)
		a.settled = time.Since(began)
		if a.ok() || a.settled > timeout {
			return a
		}
		select {
		case <-ctx.Done():
			return a
		case <-tick.C:
		}
	}
}

func (r *run) audit(ctx context.Context) audit {
	r.mu.Lock()
	latest := map[string]*sent{}
	for _, in := range r.installs {
		if in.code != "" && (latest[in.account] == nil || in.seq > latest[in.account].seq) {
			latest[in.account] = in
		}
	}
	r.mu.Unlock()
	var a audit
	for _, acct := range slices.Sorted(maps.Keys(latest)) {
		v := r.judge(ctx, acct, latest[acct].seq)
		if v.lost && v.grantMissing {
			v.window = r.killedInExchange(ctx, latest[acct].code)
		}
		a.verdicts = append(a.verdicts, v)
	}
	for _, rep := range append(slices.Clone(r.s.Controllers), r.s.Webhooks...) {
		if !rep.Stats().Running {
			a.down = append(a.down, rep.Name)
		}
	}
	return a
}

// judge checks one account: Ready with the scope id Kommo holds, and a token Secret
// whose pair Kommo accepts and descends from the latest install sent.
func (r *run) judge(ctx context.Context, acct string, latest int) verdict {
	v := verdict{account: acct, latest: latest, lost: true, grantMissing: true}
	inst, err := r.s.Installation(ctx, acct)
	if err != nil {
		v.why = "installation: " + err.Error()
		return v
	}
	c := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionReady)
	conn, err := r.s.SimConnection(ctx, acct)
	switch {
	case c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != inst.Generation:
		v.why = fmt.Sprintf("not Ready: %s", describe(c))
	case err != nil:
		v.why = "the simulator's connection: " + err.Error()
	case !conn.Connected || inst.Status.ScopeID == "" || inst.Status.ScopeID != conn.ScopeID:
		v.why = fmt.Sprintf("status.scopeID %q, Kommo's connection %+v", inst.Status.ScopeID, conn)
	}
	secret, err := r.s.TokenSecret(ctx, acct)
	if err != nil || secret == nil {
		v.why = strings.TrimPrefix(v.why+"; no token Secret", "; ")
		return v
	}
	ts, err := r.s.SimTokenStatus(ctx, string(secret.Data[kommov1.TokenKeyAccessToken]), string(secret.Data[kommov1.TokenKeyRefreshToken]))
	if err != nil {
		v.why = strings.TrimPrefix(v.why+"; token status: "+err.Error(), "; ")
		return v
	}
	var problems []string
	if v.why != "" {
		problems = append(problems, v.why)
	}
	if ts.Refresh != kommotest.TokenLive && ts.Refresh != kommotest.TokenRecoverable {
		v.dead = true
		problems = append(problems, "the token Secret's refresh token is "+ts.Refresh)
	}
	if ts.Access != kommotest.TokenLive || !ts.SamePair {
		problems = append(problems, fmt.Sprintf("the token Secret's access token is %s (same pair: %t)", ts.Access, ts.SamePair))
	}
	v.grantMissing = ts.Install != latest
	if v.grantMissing {
		problems = append(problems, fmt.Sprintf("the token Secret holds the grant of install #%d, the latest sent is #%d", ts.Install, latest))
	}
	v.lost = len(problems) > 0 && !(v.dead && len(problems) == 1)
	v.why = strings.Join(problems, "; ")
	return v
}

// killedInExchange: Kommo accepted the code exactly once, and a controller was SIGKILLed
// within a moment of that exchange, before its result could be persisted.
func (r *run) killedInExchange(ctx context.Context, code string) bool {
	cs, err := r.s.SimCodeStatus(ctx, code)
	if err != nil || !cs.Exchanged || cs.Reuses > 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kills {
		if k.After(cs.ExchangedAt.Add(-time.Second)) && k.Before(cs.ExchangedAt.Add(2*time.Second)) {
			return true
		}
	}
	return false
}

func describe(c *metav1.Condition) string {
	if c == nil {
		return "no Ready condition"
	}
	return fmt.Sprintf("Ready=%s %s %q (observedGeneration %d)", c.Status, c.Reason, c.Message, c.ObservedGeneration)
}

// report is the run's figures and failures.
type report struct {
	lines    []string
	Failures []string
}

func (p *report) add(format string, args ...any) {
	p.lines = append(p.lines, fmt.Sprintf(format, args...))
}
func (p *report) fail(format string, args ...any) {
	p.Failures = append(p.Failures, fmt.Sprintf(format, args...))
}
func (p *report) Lines() []string { return p.lines }
func (p *report) String() string {
	return strings.Join(p.lines, "\n") + "\n" + strings.Join(p.Failures, "\n") + "\n"
}

func (r *run) report(ctx context.Context, a audit, faults, settling time.Duration) *report {
	p := &report{}
	r.mu.Lock()
	defer r.mu.Unlock()
	p.add("chaos: seed %d; %s of faults, then %s to settle (converged: %t after %s)", r.cfg.Seed, faults.Round(time.Second), settling.Round(time.Second), a.ok(), a.settled.Round(time.Second))

	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(r.applied)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, r.applied[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(r.skipped)) {
		kinds = append(kinds, fmt.Sprintf("%s skipped %d (nothing to act on, or the disruption budget)", k, r.skipped[k]))
	}
	p.add("faults: %s", strings.Join(kinds, ", "))

	var installs, reinstalls, answered, unanswered int
	var slowest, slowestDown time.Duration
	for _, in := range r.installs {
		if in.reinstall {
			reinstalls++
		} else {
			installs++
		}
		if in.answered {
			answered++
			slowest = max(slowest, in.delivery.Latency)
			if in.duringOutage {
				slowestDown = max(slowestDown, in.delivery.Latency)
			}
			continue
		}
		unanswered++
		err := "no error"
		if in.err != nil {
			err = r.s.Redact(in.err.Error())
		}
		p.fail("install #%d of %s (during an outage: %t) not answered 2xx within %s: status %d from %s, %s",
			in.seq, in.account, in.duringOutage, r.answerWithin, in.delivery.Status, in.delivery.Replica, err)
	}
	p.add("installs %d, reinstalls %d: answered 2xx %d, not answered %d; slowest answer %s (%s while the API server was down)",
		installs, reinstalls, answered, unanswered, slowest.Round(time.Millisecond), slowestDown.Round(time.Millisecond))

	st, err := r.s.SimStats(ctx)
	if err != nil {
		p.fail("the simulator's stats: %v", err)
	}
	lost, dead, window := 0, 0, 0
	for _, v := range a.verdicts {
		name := r.s.InstallationName(v.account)
		switch {
		case v.lost && v.window:
			window++
			p.add("%s (latest install #%d) lost to a SIGKILL inside its exchange, the window nothing can close: %s", name, v.latest, v.why)
			continue
		case v.lost:
			lost++
		}
		if v.dead {
			dead++
		}
		if v.lost || v.dead {
			p.fail("%s (latest install #%d) %s; %s", name, v.latest, map[bool]string{true: "LOST", false: "BURNT"}[v.lost], v.why)
			for _, line := range r.events(ctx, name) {
				p.fail("    event %s", line)
			}
			for _, line := range r.logLines(name, 6) {
				p.fail("    %s", line)
			}
		}
	}
	burnt := st.BurntRefreshTokens + st.CodesExchangedTwice + dead
	p.add("Kommo: exchanges %d, refreshes %d, responses dropped %d, recoveries %d; lost %d (and %d to a SIGKILL inside the exchange), burnt %d (refresh tokens sent after their successor was used %d, codes exchanged twice %d, token Secrets holding a dead refresh token %d)",
		st.Exchanges, st.Refreshes, st.DroppedResponses, st.Recoveries, lost, window, burnt, st.BurntRefreshTokens, st.CodesExchangedTwice, dead)
	if st.BurntRefreshTokens > 0 {
		p.fail("the controller sent %d refresh tokens after their successor had been used", st.BurntRefreshTokens)
	}
	if st.CodesExchangedTwice > 0 {
		p.fail("the controller exchanged %d codes a second time", st.CodesExchangedTwice)
	}

	calls, _ := r.s.SimCalls(ctx)
	for _, w := range r.outages {
		during := 0
		for _, c := range calls {
			if c.Op == "refresh" && !c.Time.Before(w.start) && c.Time.Before(w.end) {
				during++
			}
		}
		rate := float64(w.controllerLines) / w.end.Sub(w.start).Seconds()
		p.add("API server down %s: controllers logged %.1f lines/s meanwhile, refreshes sent to Kommo meanwhile %d", w.end.Sub(w.start).Round(100*time.Millisecond), rate, during)
		if w.err != nil {
			p.fail("API server outage: %v", w.err)
		}
		if rate > maxOutageLogRate {
			p.fail("the controllers logged %.0f lines/s while the API server was down: a hot loop", rate)
		}
	}
	p.add("Kommo calls in all: %d", len(calls))

	var reps []string
	for _, rep := range append(slices.Clone(r.s.Controllers), r.s.Webhooks...) {
		s := rep.Stats()
		reps = append(reps, fmt.Sprintf("%s restarts %d (exited on its own %d)", s.Name, s.Restarts, s.Crashes))
	}
	p.add("replicas: %s", strings.Join(reps, ", "))
	for _, name := range a.down {
		p.fail("%s is not running at the end", name)
	}

	leaks, scanned, err := r.s.ScanLogs(ctx)
	switch {
	case err != nil:
		p.fail("scanning the logs: %v", err)
	case scanned == 0:
		p.fail("the leak scan read no log")
	}
	for _, l := range leaks {
		p.fail("leak: %s", l)
	}
	return p
}

// events lists the events about an object, oldest first: type, reason, message.
func (r *run) events(ctx context.Context, name string) []string {
	list, err := r.s.Events(ctx, name)
	if err != nil {
		return []string{err.Error()}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].EventTime.Before(&list[j].EventTime) })
	var out []string
	for _, e := range list {
		out = append(out, fmt.Sprintf("%s %s ×%d: %s", e.Type, e.Reason, max(1, eventCount(e)), r.s.Redact(e.Note)))
	}
	return out
}

func eventCount(e eventsv1.Event) int {
	if e.Series != nil {
		return int(e.Series.Count)
	}
	return 1
}

// logLines returns the last n lines of the controllers' and webhooks' logs that name
// the installation and say something went wrong, secrets redacted.
func (r *run) logLines(name string, n int) []string {
	var out []string
	for _, rep := range append(slices.Clone(r.s.Controllers), r.s.Webhooks...) {
		data, err := os.ReadFile(rep.LogPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			low := strings.ToLower(line)
			if strings.Contains(line, name) && (strings.Contains(low, "error") || strings.Contains(low, "fail") || strings.Contains(low, "warn")) {
				line = r.s.Redact(line)
				if len(line) > 360 {
					line = line[:360] + "…"
				}
				out = append(out, filepath.Base(rep.LogPath)+": "+line)
			}
		}
	}
	// Lines start with their time (rfc3339nano): order the replicas' lines by it.
	sort.SliceStable(out, func(i, j int) bool {
		_, a, _ := strings.Cut(out[i], ": ")
		_, b, _ := strings.Cut(out[j], ": ")
		return a < b
	})
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
