package webhook

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// Field indexes of the webhook's KommoInstallation cache. Each holds only the few
// installations a request has to look at, keyed by integration name, so that what a
// redirect or a revoke hook costs does not grow with the number of installations. The
// pending cap counts instead (pendingCounts): it needs a number, not the objects.
const (
	// indexUnlabelled: installations not yet labelled with their account id. A revoke
	// hook for an account no installation is labelled with is recorded on them.
	indexUnlabelled = "kommo-operator.io/unlabelled"
)

func addIndexes(ctx context.Context, mgr manager.Manager) error {
	for name, fn := range map[string]func(*kommov1.KommoInstallation) bool{
		indexUnlabelled: func(it *kommov1.KommoInstallation) bool { return it.Labels[kommov1.LabelAccountID] == "" },
	} {
		err := mgr.GetFieldIndexer().IndexField(ctx, &kommov1.KommoInstallation{}, name, func(o client.Object) []string {
			if it := o.(*kommov1.KommoInstallation); fn(it) {
				return []string{it.Spec.IntegrationRef.Name}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("indexing KommoInstallations (%s): %w", name, err)
		}
	}
	return nil
}

// awaitsProcessing: the installation holds an install the controller has not dealt with.
// The controller identifies an install by its receivedAt: once status.installedAt or
// status.lastAttempt.receivedAt equals it, the install is processed, whether it
// succeeded or failed.
func awaitsProcessing(it *kommov1.KommoInstallation) bool {
	a := it.Spec.Authorization
	if a == nil {
		return false
	}
	if done := it.Status.InstalledAt; done != nil && done.Equal(&a.ReceivedAt) {
		return false
	}
	if last := it.Status.LastAttempt; last != nil && last.ReceivedAt.Equal(&a.ReceivedAt) {
		return false
	}
	return true
}
