package stack

import (
	"context"
	"time"
)

// APIServerOutage stops kube-apiserver (etcd stays up), keeps it down for down, and
// starts it again on the same address with the same certificates, so that every
// process's kubeconfig keeps working once it is back. The wait is the fault's length,
// not synchronisation; ctx ending cuts it short, and the API server is started again
// whatever happens.
func (s *Stack) APIServerOutage(ctx context.Context, down time.Duration) error {
	if err := s.Env.StopAPIServer(); err != nil {
		return err
	}
	t := time.NewTimer(down)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return s.Env.StartAPIServer()
}
