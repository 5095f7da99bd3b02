package webhook

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// writeProbeFailures consecutive failed probes make the replica unready: one slow answer
// is not an outage.
const writeProbeFailures = 2

// probeWrites keeps s.writable current until ctx ends. A replica that cannot write to
// the API server (a partitioned node, a broken token or role) answers installs with 202
// and retries them for the code's lifetime; reporting unready sends installs to a
// replica that can record them at once. If no replica can write (the API server is down)
// readiness does not reach the Service anyway: the kubelet and the endpoints controller
// need the API server too, and every replica still answers and retries.
func (s *Server) probeWrites(ctx context.Context) {
	failures := 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.probeWrite(ctx)
		switch {
		case err == nil:
			if !s.writable.Swap(true) && failures > 0 {
				s.log.Info("API server takes writes again: reporting ready")
			}
			failures = 0
		case ctx.Err() != nil:
			return
		default:
			s.log.V(1).Info("Write probe failed", "error", err.Error())
			if failures++; failures == writeProbeFailures && s.writable.Swap(false) {
				s.log.Error(err, "Cannot write to the API server: reporting unready")
			}
		}
		next := s.opts.WriteProbeInterval
		if failures > 0 {
			// Not ready, or about to be: find out soon when the path is back.
			next = min(next, time.Second)
		}
		t.Reset(next)
	}
}

// probeWrite is a server-side dry run of a KommoInstallation create: it takes the path an
// install takes (connection, authentication, the create permission, admission, the CRD's
// validation, and a read of the object's key in etcd) and persists nothing, so it needs
// no permission the webhook does not already have.
func (s *Server) probeWrite(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteProbeTimeout)
	defer cancel()
	const integration, account = "kommo-operator-webhook-probe", "write-probe.invalid"
	probe := &kommov1.KommoInstallation{
		ObjectMeta: metav1.ObjectMeta{Name: integration + "." + account, Namespace: s.opts.ProbeNamespace},
		Spec: kommov1.KommoInstallationSpec{
			IntegrationRef: kommov1.LocalObjectReference{Name: integration},
			AccountDomain:  account,
		},
	}
	err := s.client.Create(ctx, probe, client.DryRunAll, fieldOwner)
	if apierrors.IsAlreadyExists(err) {
		return nil // the key was read: the path works
	}
	return err
}
