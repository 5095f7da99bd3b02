package webhook

import (
	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// installationView is the transform of the webhook's KommoInstallation cache. It keeps
// what the webhook reads: the metadata (without managedFields), the spec, and of the
// status only the receipt times that tell whether the latest install and revoke hook
// were processed. The rest of the status (conditions, channel, sources, backoffs) is the
// controller's, never read here, and the larger part of a Ready installation: the webhook
// caches every installation, so at 10,000 that is most of its memory. Nothing is written
// from a cached copy: every write is a merge patch of the fields it sets.
func installationView(obj any) (any, error) {
	it, ok := obj.(*kommov1.KommoInstallation)
	if !ok {
		return obj, nil
	}
	it.ManagedFields = nil
	st := it.Status
	it.Status = kommov1.KommoInstallationStatus{
		InstalledAt:    st.InstalledAt,
		LastAttempt:    receipt(st.LastAttempt),
		LastRevocation: receipt(st.LastRevocation),
	}
	return it, nil
}

// receipt keeps of an outcome the install or hook it belongs to.
func receipt(o *kommov1.Outcome) *kommov1.Outcome {
	if o == nil {
		return nil
	}
	return &kommov1.Outcome{ReceivedAt: o.ReceivedAt}
}
