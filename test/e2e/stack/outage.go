package stack

import (
	"context"
	"fmt"
	"time"
)

// APIServerOutage stops kube-apiserver (etcd stays up) and starts it again on the same
// address with the same certificates once down has passed since the stop began, so that
// every process's kubeconfig keeps working once it is back. The wait is the fault's
// length, not synchronisation; ctx ending cuts it short, and the API server is started
// again whatever happens. A stop that outlasts envtest's timeout ends in SIGKILL, which
// is an outage all the same: it is logged, not returned.
func (s *Stack) APIServerOutage(ctx context.Context, down time.Duration) error {
	s.setAPIServerDown(true)
	defer s.setAPIServerDown(false)
	began := time.Now()
	if err := s.Env.StopAPIServer(); err != nil {
		s.opts.Logf("%v (killed instead)", err)
	}
	t := time.NewTimer(time.Until(began.Add(down)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	// A killed API server may hold its port a moment longer: try again until Deadline.
	var err error
	for start := time.Now(); time.Since(start) < Deadline; {
		if err = s.Env.StartAPIServer(); err == nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond) // retry interval of a start, not synchronisation
	}
	return fmt.Errorf("the API server did not come back within %s: %w", Deadline, err)
}

// APIServerDown reports whether APIServerOutage has the API server stopped.
func (s *Stack) APIServerDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiDown
}

func (s *Stack) setAPIServerDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiDown = down
}
