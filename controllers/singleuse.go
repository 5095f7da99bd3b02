package controllers

import (
	"context"
	"errors"
	"sync"
	"time"
)

// singleUseTimeout bounds one single-use call with the write of its result: Kommo's
// 30-second HTTP timeout plus time to ride out a short API server outage.
const singleUseTimeout = 60 * time.Second

// errShuttingDown refuses a single-use call that would start during shutdown.
var errShuttingDown = errors.New("not starting a single-use Kommo call: the controller is shutting down")

// SingleUse runs the calls that spend a single-use credential — a code exchange, a
// refresh — together with the write of their result, detached from the reconcile's
// cancellation: SIGTERM, a lost lease or a canceled reconcile must not discard a pair
// Kommo already issued. Each run is bounded by singleUseTimeout, and Drain lets the
// process wait for the runs in flight before it exits. It is safe for concurrent use.
type SingleUse struct {
	mu       sync.Mutex
	running  int
	draining bool
	idle     chan struct{} // closed when running drops to 0 while draining
}

// Run calls fn with a context that outlives ctx's cancellation by up to singleUseTimeout.
// It does not start fn when ctx is already done or the process is draining: starting is
// the only moment a single-use call may still be skipped safely.
func (u *SingleUse) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	if u.draining {
		u.mu.Unlock()
		return errShuttingDown
	}
	u.running++
	u.mu.Unlock()
	defer u.done()
	detached, cancel := context.WithTimeout(context.WithoutCancel(ctx), singleUseTimeout)
	defer cancel()
	return fn(detached)
}

func (u *SingleUse) done() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.running--; u.running == 0 && u.draining && u.idle != nil {
		close(u.idle)
		u.idle = nil
	}
}

// Drain stops new runs and waits up to timeout for the ones in flight; it reports whether
// they all ended.
func (u *SingleUse) Drain(timeout time.Duration) bool {
	u.mu.Lock()
	u.draining = true
	if u.running == 0 {
		u.mu.Unlock()
		return true
	}
	if u.idle == nil {
		u.idle = make(chan struct{})
	}
	idle := u.idle
	u.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-time.After(timeout):
		return false
	}
}

// InFlight is how many single-use calls are running.
func (u *SingleUse) InFlight() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.running
}
