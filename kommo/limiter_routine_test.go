package kommo

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// With routine calls queued for the budget, an install's call waits behind at most one
// of them, and the routine calls alone still use every slot.
func TestRoutineCallsLetInstallsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiters(7, 1)
		ctx := context.Background()
		slot := time.Second / 7
		if err := l.wait(ctx, "first.kommo.com"); err != nil { // the burst
			t.Fatal(err)
		}
		start := time.Now()
		const routine = 6
		done := make([]time.Duration, routine)
		var wg sync.WaitGroup
		for i := range routine {
			wg.Go(func() {
				if err := l.wait(Routine(ctx), fmt.Sprintf("r%d.kommo.com", i)); err != nil {
					t.Error(err)
				}
				done[i] = time.Since(start)
			})
		}
		synctest.Wait() // one routine call holds the next slot, the rest wait for their turn
		if err := l.wait(ctx, "install.kommo.com"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > 2*slot+time.Millisecond {
			t.Errorf("the install's call waited %s behind routine calls, want at most two slots (%s)", waited, 2*slot)
		}
		wg.Wait()
		last := time.Duration(0)
		for _, d := range done {
			last = max(last, d)
		}
		if want := (routine + 1) * slot; last > want+time.Millisecond {
			t.Errorf("the routine calls took %s, want every slot used (%s)", last, want)
		}
	})
}

// A routine call waiting for its turn gives up when its context ends.
func TestRoutineTurnCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiters(1, 1)
		bg := context.Background()
		_ = l.wait(bg, "first.kommo.com")
		var holder sync.WaitGroup
		holder.Go(func() { _ = l.wait(Routine(bg), "holder.kommo.com") }) // holds the turn for 1 s
		synctest.Wait()
		ctx, cancel := context.WithCancel(Routine(bg))
		errc := make(chan error, 1)
		go func() { errc <- l.wait(ctx, "queued.kommo.com") }()
		synctest.Wait()
		cancel()
		if err := <-errc; err != context.Canceled {
			t.Errorf("got %v, want context.Canceled", err)
		}
		holder.Wait()
	})
}

// Without a limit, routine calls take no turns.
func TestRoutineUnlimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiters(math.Inf(1), 1)
		l.routine <- struct{}{} // a turn that is never given back
		if err := l.wait(Routine(context.Background()), "a.kommo.com"); err != nil {
			t.Fatal(err)
		}
	})
}
