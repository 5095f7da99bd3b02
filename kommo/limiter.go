package kommo

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxIdleLimiters bounds the per-host map; limiters at rest are dropped beyond it, which
// changes nothing since a new limiter starts full.
const maxIdleLimiters = 1024

// limiters throttles calls per destination host and in total, because Kommo's 7 requests
// per second apply to the caller's IP and repeated overruns get the IP blocked.
type limiters struct {
	limit rate.Limit
	burst int

	mu     sync.Mutex
	global *rate.Limiter
	hosts  map[string]*rate.Limiter
	// routine is the turn of calls marked Routine: one at a time holds a reservation, so
	// an unmarked call (an install) waits behind at most one of them, however many are
	// queued, while routine calls alone still use the whole budget.
	routine chan struct{}
	// held is when the last 429's retry_after (or a block's pause) runs out; no call
	// starts before it. heldKind is what caused it.
	held     time.Time
	heldKind Kind

	// Replaceable in tests so the limiter can be proven without wall-clock sleeps.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newLimiters(qps float64, burst int) *limiters {
	l := rate.Limit(qps)
	if math.IsInf(qps, 1) {
		l = rate.Inf
	}
	return &limiters{
		limit:   l,
		burst:   burst,
		global:  rate.NewLimiter(l, burst),
		hosts:   map[string]*rate.Limiter{},
		routine: make(chan struct{}, 1),
		now:     time.Now,
		sleep:   sleepCtx,
	}
}

type routineKey struct{}

// Routine marks ctx's calls as routine upkeep (planned refreshes, source syncs, a connect
// retried after its backoff): while any are waiting for the rate limit, calls not marked
// (installs and reinstalls, whose codes expire and whose users wait) go first.
func Routine(ctx context.Context) context.Context {
	return context.WithValue(ctx, routineKey{}, true)
}

func isRoutine(ctx context.Context) bool {
	r, _ := ctx.Value(routineKey{}).(bool)
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errLimiterDeadline = errors.New("rate limit wait exceeds the context deadline")

// maxHoldWait is the longest hold a call sleeps through. A longer one fails the call at
// once, without sending it: a reconcile worker must not sleep for minutes, and the caller's
// persisted backoff decides when to try again.
const maxHoldWait = 5 * time.Second

// heldError refuses a call while a hold longer than maxHoldWait runs.
type heldError struct {
	kind Kind
	left time.Duration
}

func (e *heldError) Error() string { return "held after Kommo refused earlier calls" }

// wait blocks until both the host's and the global limiter allow one call. A routine
// call first waits for its turn.
func (l *limiters) wait(ctx context.Context, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if isRoutine(ctx) && l.limit != rate.Inf {
		select {
		case l.routine <- struct{}{}:
			defer func() { <-l.routine }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := l.now()
	l.mu.Lock()
	hold := l.held.Sub(now)
	if hold > maxHoldWait {
		kind := l.heldKind
		l.mu.Unlock()
		return &heldError{kind: kind, left: hold}
	}
	if l.limit == rate.Inf {
		l.mu.Unlock()
		if hold > 0 {
			return l.sleepWithin(ctx, hold, func() {})
		}
		return nil
	}
	hl := l.hosts[host]
	if hl == nil {
		if len(l.hosts) >= maxIdleLimiters {
			for h, x := range l.hosts {
				if x.TokensAt(now) >= float64(l.burst) {
					delete(l.hosts, h)
				}
			}
		}
		hl = rate.NewLimiter(l.limit, l.burst)
		l.hosts[host] = hl
	}
	// Reserve both at once so that waiting for one does not waste the other's slot.
	rh := hl.ReserveN(now, 1)
	rg := l.global.ReserveN(now, 1)
	l.mu.Unlock()
	d := max(rh.DelayFrom(now), rg.DelayFrom(now), hold)
	if d <= 0 {
		return nil
	}
	return l.sleepWithin(ctx, d, func() {
		t := l.now()
		rh.CancelAt(t)
		rg.CancelAt(t)
	})
}

// sleepWithin waits d unless ctx ends first or its deadline is sooner than d; then it
// calls cancel to hand back reserved slots.
func (l *limiters) sleepWithin(ctx context.Context, d time.Duration, cancel func()) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		cancel()
		return errLimiterDeadline
	}
	if err := l.sleep(ctx, d); err != nil {
		cancel()
		return err
	}
	return nil
}

// holdUntil stops every call from starting before t (a 429's retry_after, a block's
// pause); kind is reported to the calls refused meanwhile.
func (l *limiters) holdUntil(t time.Time, kind Kind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.held) {
		l.held, l.heldKind = t, kind
	}
}
