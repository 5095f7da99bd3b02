package controllers_test

import (
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// The cache holds token Secrets' metadata only; an edit to one is still seen (its
// resourceVersion moves) and repaired from status, and the tokens are left as they are.
func TestTokenSecretEditsAreRepaired(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	st := h.waitReady(name).Status
	before := h.tokenSecret(name)

	// Data alone: only the resourceVersion tells.
	edited := before.DeepCopy()
	edited.Data[kommov1.TokenKeyScopeID] = []byte("forged")
	delete(edited.Data, kommov1.TokenKeyAmojoID)
	if err := env.Client.Update(h.ctx, edited); err != nil {
		t.Fatal(err)
	}
	h.eventually("the token Secret's data repaired", func() (bool, string) {
		s := h.tokenSecret(name)
		return string(s.Data[kommov1.TokenKeyScopeID]) == st.ScopeID && string(s.Data[kommov1.TokenKeyAmojoID]) == st.AmojoID,
			fmt.Sprintf("scope_id %q, amojo_id %q", s.Data[kommov1.TokenKeyScopeID], s.Data[kommov1.TokenKeyAmojoID])
	})

	edited = h.tokenSecret(name)
	delete(edited.Labels, "app.kubernetes.io/part-of")
	edited.Labels["team"] = "chat"
	if err := env.Client.Update(h.ctx, edited); err != nil {
		t.Fatal(err)
	}
	h.eventually("the token Secret's labels repaired", func() (bool, string) {
		s := h.tokenSecret(name)
		return s.Labels["app.kubernetes.io/part-of"] == "wa-bridge", fmt.Sprintf("labels %v", s.Labels)
	})
	after := h.tokenSecret(name)
	for _, key := range []string{kommov1.TokenKeyAccessToken, kommov1.TokenKeyRefreshToken, kommov1.TokenKeyExpiresAt} {
		if string(after.Data[key]) != string(before.Data[key]) {
			t.Errorf("the repair changed %s", key)
		}
	}
	if after.Labels["team"] != "chat" {
		t.Errorf("the repair dropped a label the operator does not own: %v", after.Labels)
	}
	h.eventually("status confirms the repaired version", func() (bool, string) {
		got := h.get(name).Status.TokenSecretVersion
		return got == h.tokenSecret(name).ResourceVersion, "status.tokenSecretVersion " + got
	})
	if n := h.sim.CallCount("refresh", "acme.kommo.com") + h.sim.CallCount("exchange", "acme.kommo.com"); n != 1 {
		t.Errorf("%d exchanges and refreshes, want the one exchange", n)
	}
}

// A pass with nothing due reads no Secret from the API server, nor does a restarted
// controller's first pass: what the cache and status say is enough. (A starting
// controller reads the KommoIntegration's referenced Secrets once, for its status.)
func TestPassesWithNothingDueReadNoSecret(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	h.eventually("status confirms the token Secret's version", func() (bool, string) {
		got := h.get(name).Status.TokenSecretVersion
		return got != "" && got == h.tokenSecret(name).ResourceVersion, "status.tokenSecretVersion " + got
	})

	for _, restart := range []bool{false, true} {
		if restart {
			h.stopController()
			h.startController()
		}
		h.secretReadCounts()
		for i := range 3 {
			done := reconciles(t)
			h.poke(name)
			h.eventually(fmt.Sprintf("pass %d after the poke", i+1), func() (bool, string) {
				n := reconciles(t)
				return n > done, fmt.Sprintf("%v reconciles", n)
			})
		}
		for secret, n := range h.secretReadCounts() {
			if secret == name+"-token" || n > 1 {
				t.Errorf("restart %v: Secret %s read %d times in passes with nothing due", restart, secret, n)
			}
		}
	}
	h.waitReady(name)
}

// An install reads each Secret it needs from the API server once: the code, the
// integration's credentials (client and channel secret in one Secret) and the token
// Secret (to find none before the exchange).
func TestAnInstallReadsEachSecretOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.eventually("the KommoIntegration reconciled", func() (bool, string) {
		integration := &kommov1.KommoIntegration{}
		if err := env.Client.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: integrationName}, integration); err != nil {
			return false, err.Error()
		}
		return integration.Status.ConfigVersion != "", "no configVersion yet"
	})
	h.secretReadCounts()
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	reads := h.secretReadCounts()
	for secret, n := range reads {
		if n > 1 {
			t.Errorf("Secret %s read %d times for one install", secret, n)
		}
	}
	if reads[name+"-token"] != 1 {
		t.Errorf("token Secret read %d times before the exchange, want 1", reads[name+"-token"])
	}
	if n := h.secretDataLists.Load(); n != 0 {
		t.Errorf("the controller listed or watched Secrets with their data %d times: a typed Secret informer keeps every token in its cache", n)
	}
}

// reconciles is how many reconciles of installations have ended, in this process.
func reconciles(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "kommoinstallation" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
