package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// SourcesResyncInterval is how often an installation's sources are synced without a
// change, to repair drift. Each resync is one GET, and every Kommo call of the operator
// shares one limit (7/s by default): at an hour, 5,000 installations cost 1.4 requests/s.
const SourcesResyncInterval = time.Hour

// SourcesInput assembles the sync's input from the objects: the account host the
// controller talks to, the declarations of both, the previous status, and the
// integration's channel and widget codes.
func SourcesInput(integration *kommov1.KommoIntegration, inst *kommov1.KommoInstallation, accessToken string) SourcesSyncInput {
	in := SourcesSyncInput{
		Host:        inst.Status.AccountDomain,
		AccessToken: accessToken,
		Template:    integration.Spec.Sources,
		Declared:    inst.Spec.Sources,
		Previous:    inst.Status.Sources,
		WidgetCode:  integration.Spec.WidgetCode,
	}
	if in.Host == "" {
		in.Host = inst.Spec.AccountDomain
	}
	if integration.Spec.Chat != nil {
		in.OriginCode = integration.Spec.Chat.Code
	}
	return in
}

// RecordSources writes a sync's result into the installation's status: status.sources,
// and the SourcesSynced condition at the installation's generation (removed when there
// was nothing to sync).
func RecordSources(inst *kommov1.KommoInstallation, res SourcesSyncResult) {
	inst.Status.Sources = res.Sources
	if res.Condition.Type == "" {
		meta.RemoveStatusCondition(&inst.Status.Conditions, kommov1.ConditionSourcesSynced)
		return
	}
	c := res.Condition
	c.ObservedGeneration = inst.Generation
	meta.SetStatusCondition(&inst.Status.Conditions, c)
}
