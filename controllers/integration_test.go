package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

func (h *harness) integration() *kommov1.KommoIntegration {
	h.t.Helper()
	integration := &kommov1.KommoIntegration{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: integrationName}, integration); err != nil {
		h.t.Fatal(err)
	}
	return integration
}

func (h *harness) waitIntegration(status metav1.ConditionStatus, reason string) *kommov1.KommoIntegration {
	h.t.Helper()
	var integration *kommov1.KommoIntegration
	h.eventually(fmt.Sprintf("integration Ready=%s/%s", status, reason), func() (bool, string) {
		integration = h.integration()
		c := meta.FindStatusCondition(integration.Status.Conditions, kommov1.ConditionReady)
		if c == nil || c.ObservedGeneration != integration.Generation {
			return false, fmt.Sprintf("%+v", c)
		}
		return c.Status == status && c.Reason == reason, c.Reason + ": " + c.Message
	})
	return integration
}

func TestIntegrationReportsSecretsAndEffectiveSettings(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	integration := h.waitIntegration(metav1.ConditionTrue, kommov1.ReasonReady)
	if got := strings.Join(integration.Status.AccountDomains, ","); got != "kommo.com,amocrm.ru,amocrm.com" {
		t.Errorf("effective accountDomains = %s", got)
	}
	if c := integration.Status.Chat; c == nil || c.Title != integrationName || c.HookAPIVersion != "v2" || c.ChannelID != channelID {
		t.Errorf("effective chat = %+v", c)
	}

	h.mergePatch(integration, map[string]any{"spec": map[string]any{"stateSecretRef": map[string]string{"name": "site-state", "key": "key"}}})
	integration = h.waitIntegration(metav1.ConditionFalse, kommov1.ReasonSecretNotFound)
	c := meta.FindStatusCondition(integration.Status.Conditions, kommov1.ConditionReady)
	if !strings.Contains(c.Message, "site-state") || !strings.Contains(c.Message, `"key"`) {
		t.Errorf("the condition does not name the missing Secret key: %q", c.Message)
	}

	// A site install needs the missing state key and says so; a widget install does not.
	site := h.install("acme.kommo.com")
	h.waitCondition(site, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonIntegrationNotReady)
	widget := h.installWith("other.kommo.com", h.sim.IssueCode("other.kommo.com", h.clientID), func(a *kommov1.Authorization) { a.FromWidget = true })
	h.waitReady(widget)

	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-state", Namespace: h.ns}, StringData: map[string]string{"key": randHex(16)}})
	// Referenced Secrets are not watched (not the operator's); any change re-checks them.
	h.mergePatch(integration, map[string]any{"metadata": map[string]any{"annotations": map[string]string{"touched": "1"}}})
	h.waitIntegration(metav1.ConditionTrue, kommov1.ReasonReady)
}

func TestStateIsVerifiedForSiteInstalls(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	key := randHex(16)
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-state", Namespace: h.ns}, StringData: map[string]string{"key": key}})
	h.mergePatch(h.integration(), map[string]any{"spec": map[string]any{"stateSecretRef": map[string]string{"name": "site-state", "key": "key"}}})

	// A state signed with another key is refused before the code is exchanged.
	forged, err := kommo.MintState([]byte("another key"), time.Now().Add(10*time.Minute), "n1")
	if err != nil {
		t.Fatal(err)
	}
	name := h.installWith("acme.kommo.com", h.sim.IssueCode("acme.kommo.com", h.clientID), func(a *kommov1.Authorization) { a.State = forged })
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonInvalidState)
	h.waitEvent(name, "InstallFailed")
	if n := h.sim.CallCount("exchange", ""); n != 0 {
		t.Errorf("%d exchanges with an invalid state", n)
	}

	// A valid one from the integration's own site works.
	state, err := kommo.MintState([]byte(key), time.Now().Add(10*time.Minute), "n2")
	if err != nil {
		t.Fatal(err)
	}
	h.installWith("acme.kommo.com", h.sim.IssueCode("acme.kommo.com", h.clientID), func(a *kommov1.Authorization) { a.State = state })
	h.waitReady(name)

	// Kommo's own widget installs carry no state and need none.
	widget := h.installWith("other.kommo.com", h.sim.IssueCode("other.kommo.com", h.clientID), func(a *kommov1.Authorization) { a.FromWidget = true })
	h.waitReady(widget)
}
