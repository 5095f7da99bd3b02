package kommo_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// virtualTime is the limiter's clock in these tests: waiting advances it instead of
// sleeping, and the simulator's rate limiter reads the same clock.
type virtualTime struct {
	clock  *fakeClock
	sleeps []time.Duration
}

func newVirtualTime() *virtualTime { return &virtualTime{clock: &fakeClock{t: t0}} }

func (v *virtualTime) sleep(ctx context.Context, d time.Duration) error {
	v.sleeps = append(v.sleeps, d)
	v.clock.Advance(d)
	return nil
}

func TestRateLimiterKeepsKommoHappy(t *testing.T) {
	vt := newVirtualTime()
	e := newEnv(t, kommotest.Options{QPS: 7, RateClock: vt.clock.Now}, kommo.Options{QPS: 7})
	kommo.SetLimiterClock(e.c, vt.clock.Now, vt.sleep)
	tok := e.install()
	const n = 30
	for i := 0; i < n; i++ {
		if _, err := e.c.Account(context.Background(), host, tok.AccessToken); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Burst 1 at 7/s: every call after the first waited 1/7 s.
	if len(vt.sleeps) != n {
		t.Fatalf("%d waits, want %d", len(vt.sleeps), n)
	}
	for i, d := range vt.sleeps {
		if d < time.Second/7-time.Millisecond || d > time.Second/7+time.Millisecond {
			t.Fatalf("wait %d = %s, want 1/7 s", i, d)
		}
	}
	if elapsed := vt.clock.Now().Sub(t0); elapsed < n*time.Second/7-time.Millisecond {
		t.Errorf("%d calls in %s: faster than 7/s", n+1, elapsed)
	}
}

func TestWithoutLimiterKommoThrottles(t *testing.T) {
	vt := newVirtualTime()
	e := newEnv(t, kommotest.Options{QPS: 7, RateClock: vt.clock.Now}, kommo.Options{QPS: math.Inf(1)})
	kommo.SetLimiterClock(e.c, vt.clock.Now, vt.sleep)
	tok := e.install() // request 1 of the burst of 7
	for i := 2; i <= 7; i++ {
		if _, err := e.c.Account(context.Background(), host, tok.AccessToken); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	_, err := e.c.Account(context.Background(), host, tok.AccessToken)
	wantKind(t, err, kommo.KindRateLimited, 429)
	d, _ := kommo.RetryAfterOf(err)
	if d != time.Second {
		t.Errorf("retry after %s", d)
	}
	if len(vt.sleeps) != 0 {
		t.Errorf("a disabled limiter waited: %v", vt.sleeps)
	}
	vt.clock.Advance(d)
	if _, err := e.c.Account(context.Background(), host, tok.AccessToken); err != nil {
		t.Fatalf("after retry_after: %v", err)
	}
}

func TestRateLimiterIsGlobalAcrossHosts(t *testing.T) {
	vt := newVirtualTime()
	e := newEnv(t, kommotest.Options{AutoAccounts: true}, kommo.Options{QPS: 2})
	kommo.SetLimiterClock(e.c, vt.clock.Now, vt.sleep)
	hosts := []string{"a.kommo.com", "b.amocrm.ru", "c.kommo.com", "d.amocrm.com"}
	for _, h := range hosts {
		if _, err := e.c.ExchangeCode(context.Background(), h, e.app, e.sim.IssueCode(h, clientID)); err != nil {
			t.Fatal(err)
		}
	}
	// Four different hosts, yet every call after the first waited for the global limit.
	if len(vt.sleeps) != len(hosts)-1 {
		t.Fatalf("waits %v", vt.sleeps)
	}
	for _, d := range vt.sleeps {
		if d != 500*time.Millisecond {
			t.Fatalf("waits %v, want 500ms each", vt.sleeps)
		}
	}
}

func TestRateLimiterCancellation(t *testing.T) {
	vt := newVirtualTime()
	e := newEnv(t, kommotest.Options{}, kommo.Options{QPS: 2})
	canceled := false
	kommo.SetLimiterClock(e.c, vt.clock.Now, func(ctx context.Context, d time.Duration) error {
		vt.sleeps = append(vt.sleeps, d)
		if !canceled {
			canceled = true
			return context.Canceled
		}
		vt.clock.Advance(d)
		return nil
	})
	tok := e.install()
	before := e.sim.CallCount("", "")
	_, err := e.c.Account(context.Background(), host, tok.AccessToken)
	wantKind(t, err, kommo.KindTransient, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	if e.sim.CallCount("", "") != before {
		t.Error("a canceled wait still sent the request")
	}
	// The canceled reservation was returned: the next call waits one slot, not two.
	if _, err := e.c.Account(context.Background(), host, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if len(vt.sleeps) != 2 || vt.sleeps[1] != 500*time.Millisecond {
		t.Errorf("waits %v, want [500ms 500ms]", vt.sleeps)
	}

	// A wait longer than the context allows fails at once.
	slow := newEnv(t, kommotest.Options{}, kommo.Options{QPS: 0.001})
	kommo.SetLimiterClock(slow.c, vt.clock.Now, func(context.Context, time.Duration) error {
		t.Error("slept although the deadline could not be met")
		return nil
	})
	slow.install()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = slow.c.Account(ctx, host, tok.AccessToken)
	if !errors.Is(err, context.DeadlineExceeded) || kommo.KindOf(err) != kommo.KindTransient {
		t.Errorf("got %v", err)
	}
}

// Kommo's 429 is about the caller's IP: after one, no request to any host starts before
// retry_after has passed.
func TestRateLimitedHoldsEveryCall(t *testing.T) {
	vt := newVirtualTime()
	e := newEnv(t, kommotest.Options{QPS: -1, RateClock: vt.clock.Now}, kommo.Options{QPS: math.Inf(1)})
	kommo.SetLimiterClock(e.c, vt.clock.Now, vt.sleep)
	tok := e.install()
	e.sim.Inject(kommotest.Fault{Op: "account", Status: 429, RetryAfter: 3 * time.Second})
	_, err := e.c.Account(context.Background(), host, tok.AccessToken)
	if d, ok := kommo.RetryAfterOf(err); !ok || d != 3*time.Second {
		t.Fatalf("want a 429 with retry_after 3s, got %v", err)
	}
	if len(vt.sleeps) != 0 {
		t.Fatalf("waited %v before the 429", vt.sleeps)
	}
	start := vt.clock.Now()
	var kerr *kommo.Error
	if _, err := e.c.Account(context.Background(), "other.kommo.com", "x"); !errors.As(err, &kerr) || kerr.Status == 0 {
		t.Fatalf("the next call did not reach Kommo: %v", err)
	}
	if waited := vt.clock.Now().Sub(start); waited != 3*time.Second {
		t.Errorf("the next call waited %s, want retry_after (3s)", waited)
	}
}

// A hold longer than a reconcile may sleep fails calls at once, unsent, with what caused
// it and how long is left: an HTML 403 block pauses every host, a long retry_after too.
func TestLongHoldsFailFastUnsent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault kommotest.Fault
		kind  kommo.Kind
		left  time.Duration
	}{
		{"blocked", kommotest.Fault{Op: "account", Status: 403, HTMLBlocked: true}, kommo.KindBlocked, kommo.BlockedPause},
		{"long retry_after", kommotest.Fault{Op: "account", Status: 429, RetryAfter: 40 * time.Second}, kommo.KindRateLimited, 40 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vt := newVirtualTime()
			e := newEnv(t, kommotest.Options{QPS: -1, RateClock: vt.clock.Now}, kommo.Options{QPS: math.Inf(1)})
			kommo.SetLimiterClock(e.c, vt.clock.Now, vt.sleep)
			tok := e.install()
			e.sim.Inject(tc.fault)
			if _, err := e.c.Account(context.Background(), host, tok.AccessToken); kommo.KindOf(err) != tc.kind {
				t.Fatalf("first call: %v, want %s", err, tc.kind)
			}
			sent := e.sim.CallCount("", "")
			_, err := e.c.Account(context.Background(), "other.kommo.com", "x")
			if kommo.KindOf(err) != tc.kind {
				t.Fatalf("held call: %v, want %s", err, tc.kind)
			}
			if d, ok := kommo.RetryAfterOf(err); !ok || d != tc.left {
				t.Errorf("held call says retry after %v, want %v", d, tc.left)
			}
			if n := e.sim.CallCount("", ""); n != sent {
				t.Errorf("the held call reached Kommo (%d calls, want %d)", n, sent)
			}
			if len(vt.sleeps) != 0 {
				t.Errorf("slept %v instead of failing fast", vt.sleeps)
			}
			vt.clock.Advance(tc.left)
			if _, err := e.c.Account(context.Background(), host, tok.AccessToken); err != nil {
				t.Errorf("after the hold: %v", err)
			}
		})
	}
}
