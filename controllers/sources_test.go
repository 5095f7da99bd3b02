package controllers_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// sourcesByExternalID is the integration's sources in the simulated account.
func (h *harness) sourcesByExternalID(host string) map[string]kommotest.Source {
	out := map[string]kommotest.Source{}
	for _, s := range h.sim.Sources(host, h.clientID) {
		out[s.ExternalID] = s
	}
	return out
}

// Sources are synced after the connect, from the integration's template and the
// installation's own declarations, kept across a reinstall, and a sources failure never
// blocks the grant or the channel.
func TestSourcesFollowTheConnect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	integration := &kommov1.KommoIntegration{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: integrationName}, integration); err != nil {
		t.Fatal(err)
	}
	h.mergePatch(integration, map[string]any{"spec": map[string]any{
		"chat":    map[string]any{"code": "kommo.ext.30470678"},
		"sources": []map[string]any{{"externalID": "wa-main", "name": "WhatsApp", "default": true}},
	}})
	h.sim.AddPipeline("acme.kommo.com", "Sales")
	name := h.install("acme.kommo.com")
	h.waitCondition(name, kommov1.ConditionSourcesSynced, metav1.ConditionTrue, kommov1.ReasonSynced)
	inst := h.waitReady(name)
	got := h.sourcesByExternalID("acme.kommo.com")
	if s, ok := got["wa-main"]; !ok || !s.Default || s.OriginCode != "kommo.ext.30470678" {
		t.Fatalf("template source in Kommo: %+v", got)
	}
	if len(inst.Status.Sources) != 1 || inst.Status.Sources[0].ExternalID != "wa-main" {
		t.Errorf("status.sources = %+v", inst.Status.Sources)
	}

	// The backend declares a per-account source in a pipeline named in this account.
	h.mergePatch(inst, map[string]any{"spec": map[string]any{"sources": []map[string]any{
		{"externalID": "wa-5550101", "name": "+1 555 0101", "pipelineName": "Sales"}}}})
	h.eventually("the per-account source", func() (bool, string) {
		s, ok := h.sourcesByExternalID("acme.kommo.com")["wa-5550101"]
		return ok, fmt.Sprintf("%+v", s)
	})

	// A reinstall keeps them, and an unknown pipeline is reported without un-Readying
	// the grant or the channel.
	h.install("acme.kommo.com")
	h.mergePatch(h.get(name), map[string]any{"spec": map[string]any{"sources": []map[string]any{
		{"externalID": "wa-5550101", "name": "+1 555 0101", "pipelineName": "No such pipeline"}}}})
	inst = h.waitCondition(name, kommov1.ConditionSourcesSynced, metav1.ConditionFalse, kommov1.ReasonPipelineNotFound)
	if c := condition(t, inst, kommov1.ConditionChannelConnected); c.Status != metav1.ConditionTrue {
		t.Errorf("ChannelConnected = %s/%s while sources fail", c.Status, c.Reason)
	}
	if c := condition(t, inst, kommov1.ConditionAuthorized); c.Status != metav1.ConditionTrue {
		t.Errorf("Authorized = %s/%s while sources fail", c.Status, c.Reason)
	}
	if _, ok := h.sourcesByExternalID("acme.kommo.com")["wa-main"]; !ok {
		t.Error("the template source was lost")
	}
}

// Drift is repaired on the hourly resync, a source with a declared external id is adopted,
// and a removed declaration deletes only what the operator created.
func TestSourcesDriftAdoptionAndRemoval(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	const host = "acme.kommo.com"
	// A source the backend made by hand before the operator managed any, and one the
	// operator must never touch.
	h.sim.PutSource(host, h.clientID, kommotest.Source{Name: "Old WhatsApp", ExternalID: "wa-main"})
	h.sim.PutSource(host, h.clientID, kommotest.Source{Name: "Someone else's", ExternalID: "manual"})
	name := h.install(host)
	h.waitReady(name)
	inst := h.get(name)
	h.mergePatch(inst, map[string]any{"spec": map[string]any{"sources": []map[string]any{
		{"externalID": "wa-main", "name": "WhatsApp"}, {"externalID": "wa-extra", "name": "Extra"}}}})
	inst = h.waitCondition(name, kommov1.ConditionSourcesSynced, metav1.ConditionTrue, kommov1.ReasonSynced)
	owned := map[string]string{}
	for _, s := range inst.Status.Sources {
		owned[s.ExternalID] = s.Ownership
	}
	if owned["wa-main"] != kommov1.SourceAdopted || owned["wa-extra"] != kommov1.SourceCreated {
		t.Errorf("ownership = %v, want wa-main Adopted and wa-extra Created", owned)
	}
	if got := h.sourcesByExternalID(host)["wa-main"].Name; got != "WhatsApp" {
		t.Errorf("the adopted source is named %q, want it patched to the declaration", got)
	}

	// Someone renames a managed source in Kommo; the hourly resync repairs it.
	h.sim.EditSource(host, h.clientID, "wa-extra", func(s *kommotest.Source) { s.Name = "Renamed by hand" })
	h.clock.Advance(2 * time.Hour)
	h.poke(name)
	h.eventually("the drift repaired", func() (bool, string) {
		got := h.sourcesByExternalID(host)["wa-extra"].Name
		return got == "Extra", got
	})

	// The backend drops both declarations: the created one goes, the adopted one and the
	// unknown one stay.
	h.mergePatch(h.get(name), map[string]any{"spec": map[string]any{"sources": nil}})
	h.eventually("the removal applied", func() (bool, string) {
		got := h.sourcesByExternalID(host)
		_, extra := got["wa-extra"]
		return !extra, fmt.Sprintf("%v", got)
	})
	got := h.sourcesByExternalID(host)
	if _, ok := got["wa-main"]; !ok {
		t.Error("an adopted source was deleted when its declaration went")
	}
	if _, ok := got["manual"]; !ok {
		t.Error("a source the operator never managed was deleted")
	}
}
