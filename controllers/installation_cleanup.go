package controllers

import (
	"time"

	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// failedInstallRetention is how long an installation that never held a grant is kept
// after its only install failed, so that people can see why before it goes.
const failedInstallRetention = time.Hour

// collectFailedInstall deletes an installation the webhook created whose install failed
// and that never held a grant, once failedInstallRetention has passed: a forged install
// (any GET of the public Redirect URI) leaves nothing behind. The delete is conditional
// on the object being as read, so an install recorded meanwhile keeps it.
func (r *InstallationReconciler) collectFailedInstall(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	auth, a := inst.Spec.Authorization, st.LastAttempt
	if auth == nil || inst.Spec.LongLivedTokenSecretRef != nil || s.tokens != nil || st.InstalledAt != nil ||
		a == nil || a.Result != kommov1.OutcomeFailed || !a.ReceivedAt.Equal(&auth.ReceivedAt) || len(inst.Finalizers) > 0 {
		return nil
	}
	if left := a.Time.Add(failedInstallRetention).Sub(s.now); left > 0 {
		s.requeue(left)
		return nil
	}
	if err := r.deleteCodeSecret(ctx, s); err != nil {
		return err
	}
	rv, uid := s.original.ResourceVersion, inst.UID
	err := r.Delete(ctx, inst, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	switch {
	case apierrors.IsConflict(err):
		s.stale = true // changed meanwhile, maybe a new install: look again
		return nil
	case err != nil:
		return client.IgnoreNotFound(err)
	}
	s.gone = true
	// The event goes on the KommoIntegration: the installation is gone.
	r.Recorder.Eventf(s.integration, nil, corev1.EventTypeNormal, eventFailedInstallGone, "Collect",
		"Deleted installation %s: its only install failed (%s) and it never held tokens", inst.Name, a.Reason)
	logf.FromContext(ctx).Info("Deleted an installation whose only install failed", "reason", a.Reason)
	return nil
}
