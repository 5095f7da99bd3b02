package controllers_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestInstallExchangesConnectsAndRecordsScope(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	before := time.Now()
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)

	st := inst.Status
	id, amojo, ok := h.sim.Account("acme.kommo.com")
	if !ok {
		t.Fatal("the simulator has no account")
	}
	scope, connected := h.sim.Connection(channelID, amojo)
	switch {
	case !connected:
		t.Error("the channel is not connected in Kommo")
	case st.AccountID != id || st.AmojoID != amojo:
		t.Errorf("status account = %d/%s, Kommo says %d/%s", st.AccountID, st.AmojoID, id, amojo)
	case st.ScopeID != scope:
		t.Errorf("status.scopeID = %q, Kommo returned %q", st.ScopeID, scope)
	case st.InstalledAt == nil || !st.InstalledAt.Equal(&inst.Spec.Authorization.ReceivedAt):
		t.Errorf("status.installedAt = %v, want the authorization's receivedAt %v", st.InstalledAt, inst.Spec.Authorization.ReceivedAt)
	case st.ConnectedAt == nil || st.ConnectedAt.Before(&metav1.Time{Time: before.Truncate(time.Second)}):
		t.Errorf("status.connectedAt = %v", st.ConnectedAt)
	case st.TokenSecretName != name+"-token":
		t.Errorf("status.tokenSecretName = %q", st.TokenSecretName)
	case st.ObservedGeneration != inst.Generation:
		t.Errorf("observedGeneration %d, generation %d", st.ObservedGeneration, inst.Generation)
	}
	if st.RefreshTime == nil || st.AccessTokenExpiresAt == nil {
		t.Fatalf("refreshTime %v, accessTokenExpiresAt %v", st.RefreshTime, st.AccessTokenExpiresAt)
	}
	if st.RefreshTime.Nanosecond() != 0 || !st.RefreshTime.Before(st.AccessTokenExpiresAt) ||
		st.RefreshTime.Time.Before(before.Add(16*time.Hour-144*time.Minute-time.Second)) {
		t.Errorf("refreshTime %s is not two thirds into a 24h token expiring %s (minus up to 10%% jitter)", st.RefreshTime, st.AccessTokenExpiresAt)
	}
	if got := inst.Labels[kommov1.LabelAccountID]; got != strconv.FormatInt(id, 10) {
		t.Errorf("account-id label = %q, want %d", got, id)
	}
	if len(inst.Finalizers) != 1 || inst.Finalizers[0] != kommov1.FinalizerChannel {
		t.Errorf("finalizers = %v, want the channel finalizer while connected", inst.Finalizers)
	}

	secret := h.tokenSecret(name)
	if secret == nil {
		t.Fatal("no token Secret")
	}
	if secret.Type != kommov1.SecretTypeToken {
		t.Errorf("token Secret type = %q", secret.Type)
	}
	if ref := metav1.GetControllerOf(secret); ref == nil || ref.UID != inst.UID {
		t.Errorf("token Secret is not controlled by the installation: %v", secret.OwnerReferences)
	}
	wantLabels := map[string]string{
		kommov1.LabelManagedBy: kommov1.ManagedByValue, kommov1.LabelIntegration: integrationName,
		"app.kubernetes.io/part-of": "wa-bridge", kommov1.LabelAccountID: strconv.FormatInt(id, 10),
	}
	for k, v := range wantLabels {
		if secret.Labels[k] != v {
			t.Errorf("token Secret label %s = %q, want %q", k, secret.Labels[k], v)
		}
	}
	if _, copied := secret.Labels["argocd.argoproj.io/instance"]; copied {
		t.Error("the KommoIntegration's GitOps tracking label was copied onto the token Secret")
	}
	claims, err := kommo.ParseClaims(string(secret.Data[kommov1.TokenKeyAccessToken]))
	if err != nil || claims.AccountID != id {
		t.Errorf("access_token is not this account's JWT: %v %v", claims, err)
	}
	for key, want := range map[string]string{
		kommov1.TokenKeyAccountDomain: "acme.kommo.com", kommov1.TokenKeyAccountID: strconv.FormatInt(id, 10),
		kommov1.TokenKeyAmojoID: amojo, kommov1.TokenKeyScopeID: scope,
		kommov1.TokenKeyExpiresAt: st.AccessTokenExpiresAt.UTC().Format(time.RFC3339),
	} {
		if got := string(secret.Data[key]); got != want {
			t.Errorf("token Secret %s = %q, want %q", key, got, want)
		}
	}
	if len(secret.Data[kommov1.TokenKeyRefreshToken]) == 0 {
		t.Error("token Secret has no refresh_token")
	}

	codeSecret := &corev1.Secret{}
	err = env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: inst.Spec.Authorization.CodeSecretRef.Name}, codeSecret)
	if !apierrors.IsNotFound(err) {
		t.Errorf("the exchanged code Secret still exists (err %v)", err)
	}
	if n := h.sim.CallCount("exchange", "acme.kommo.com"); n != 1 {
		t.Errorf("the code was exchanged %d times", n)
	}
	h.waitEvent(name, "Installed")

	if got := gauge(t, "kommo_api_requests_total", map[string]string{"api": "oauth", "operation": "exchange", "code": "200"}); got < 1 {
		t.Errorf("kommo_api_requests_total{oauth,exchange,200} = %v", got)
	}
}

// gauge returns the value of the registry's metric with exactly these labels (counter or
// gauge), 0 when absent.
func gauge(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestRefreshRotatesTokensBeforeExpiry(t *testing.T) {
	h := newHarness(t, harnessOptions{sim: kommotest.Options{TokenLifetime: 6 * time.Second}, noChat: true})
	name := h.install("acme.kommo.com")
	first := string(h.waitReady(name).Status.TokenSecretName)
	firstRefresh := string(h.tokenSecret(name).Data[kommov1.TokenKeyRefreshToken])

	// Two refreshes in a row prove the new pair was persisted and used.
	h.eventually("two refreshes", func() (bool, string) {
		n := h.sim.CallCount("refresh", "acme.kommo.com")
		return n >= 2, fmt.Sprintf("%d refreshes", n)
	})
	inst := h.waitReady(name)
	secret := h.tokenSecret(name)
	if string(secret.Data[kommov1.TokenKeyRefreshToken]) == firstRefresh {
		t.Error("the refresh token never changed")
	}
	if inst.Status.LastRefreshTime == nil || inst.Status.TokenSecretName != first {
		t.Errorf("status after refresh: %+v", inst.Status)
	}
	if !inst.Status.RefreshTime.After(inst.Status.LastRefreshTime.Time) || !inst.Status.RefreshTime.Before(inst.Status.AccessTokenExpiresAt) {
		t.Errorf("next refresh %s is not between the last refresh %s and expiry %s", inst.Status.RefreshTime, inst.Status.LastRefreshTime, inst.Status.AccessTokenExpiresAt)
	}
	if n := h.sim.UsedRefreshTokenReplays(); n != 0 {
		t.Errorf("a used refresh token was sent again %d times", n)
	}
	// The access token in the Secret is the one Kommo accepts now.
	if _, err := newKommo(t, h).Account(h.ctx, "acme.kommo.com", string(secret.Data[kommov1.TokenKeyAccessToken])); err != nil {
		t.Errorf("the stored access token does not work: %v", err)
	}
}

func newKommo(t *testing.T, h *harness) *kommo.Client {
	c, err := kommo.NewClient(kommo.Options{Endpoint: h.simURL, QPS: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRefreshRequestedByAnnotation(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	if inst.Status.LastRefreshTime != nil {
		t.Fatal("refreshed without being due")
	}
	h.mergePatch(inst, map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest(),
	}}})
	h.eventually("a refresh", func() (bool, string) {
		inst = h.get(name)
		return inst.Status.LastRefreshTime != nil, "no lastRefreshTime"
	})
	if n := h.sim.CallCount("refresh", "acme.kommo.com"); n != 1 {
		t.Errorf("%d refreshes for one request", n)
	}
}

func TestLostRefreshResponseIsRecovered(t *testing.T) {
	h := newHarness(t, harnessOptions{sim: kommotest.Options{RefreshGrace: true}, noChat: true})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	h.sim.Inject(kommotest.Fault{Op: "refresh", DropResponse: true})
	h.mergePatch(inst, map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest(),
	}}})
	h.eventually("a refresh after the lost response", func() (bool, string) {
		inst = h.get(name)
		return inst.Status.LastRefreshTime != nil, fmt.Sprintf("backoffs %+v", inst.Status.Backoffs)
	})
	inst = h.waitReady(name)
	if n := h.sim.CallCount("refresh", "acme.kommo.com"); n != 2 {
		t.Errorf("%d refresh calls, want the lost one and its recovery", n)
	}
	secret := h.tokenSecret(name)
	if _, err := newKommo(t, h).Account(h.ctx, "acme.kommo.com", string(secret.Data[kommov1.TokenKeyAccessToken])); err != nil {
		t.Errorf("the recovered access token does not work: %v", err)
	}
}

func TestLostRefreshResponseWithStrictTokensNeedsReinstall(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	h.sim.Inject(kommotest.Fault{Op: "refresh", DropResponse: true})
	h.mergePatch(inst, map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest(),
	}}})
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonReinstallRequired)
	h.waitEvent(name, "ReinstallRequired")

	// A reinstall brings it back.
	h.install("acme.kommo.com")
	h.waitReady(name)
}

func TestControllerRestartMidInstall(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// The code is exchanged, then the connect fails and the controller goes away.
	h.sim.Inject(kommotest.Fault{Op: "connect", Status: 503, Times: 2})
	name := h.install("acme.kommo.com")
	inst := h.waitCondition(name, kommov1.ConditionChannelConnected, metav1.ConditionFalse, kommov1.ReasonKommoUnavailable)
	h.stopController()
	if inst.Status.InstalledAt == nil || h.tokenSecret(name) == nil {
		t.Fatal("the grant was not recorded before the connect")
	}
	h.startController()
	inst = h.waitReady(name)
	if n := h.sim.CallCount("exchange", "acme.kommo.com"); n != 1 {
		t.Errorf("the code was exchanged %d times across the restart", n)
	}
	if inst.Status.InstalledAt == nil || inst.Status.ScopeID == "" {
		t.Errorf("install not completed after restart: %+v", inst.Status)
	}
}

func TestRateLimitAndServerErrorStorms(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.sim.Inject(kommotest.Fault{Op: "exchange", Status: 429, RetryAfter: time.Second, Times: 2})
	h.sim.Inject(kommotest.Fault{Op: "account", Status: 500, Times: 3})
	h.sim.Inject(kommotest.Fault{Op: "connect", Status: 502, Times: 3})
	start := time.Now()
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	if len(inst.Status.Backoffs) != 0 {
		t.Errorf("backoffs after success: %+v", inst.Status.Backoffs)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("ready after %s: Kommo's retry_after of 1s twice was not honoured", d)
	}
	// No hot loop: each failure is retried once per backoff step.
	for op, max := range map[string]int{"exchange": 3, "account": 4, "connect": 4} {
		if n := h.sim.CallCount(op, ""); n > max {
			t.Errorf("%d %s calls for %d injected failures", n, op, max-1)
		}
	}
}

func TestBlockedBacksOff(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	h.sim.Inject(kommotest.Fault{Op: "exchange", Status: 403, HTMLBlocked: true})
	name := h.install("acme.kommo.com")
	inst := h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonBlocked)
	if b := backoff(inst, "Attempt"); b == nil || b.FailedAttempts != 1 {
		t.Errorf("attempt backoff = %+v, want one failure", b)
	}
	h.waitEvent(name, "Blocked")
	// Backoff for a block is minutes (scaled down here to seconds): then it recovers.
	h.waitReady(name)
	if n := h.sim.CallCount("exchange", ""); n != 2 {
		t.Errorf("%d exchange calls, want the blocked one and one retry", n)
	}
}

func TestReinstallExchangesAgainAndReconnects(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	first := h.waitReady(name)
	firstAccess := string(h.tokenSecret(name).Data[kommov1.TokenKeyAccessToken])

	// Kommo disconnects the channel when the integration is disabled; then a reinstall.
	h.sim.RevokeAccess("acme.kommo.com", h.clientID)
	h.install("acme.kommo.com")
	h.eventually("the reinstall processed", func() (bool, string) {
		inst := h.get(name)
		return inst.Status.InstalledAt != nil && inst.Status.InstalledAt.After(first.Status.InstalledAt.Time) &&
			inst.Status.ConnectedAt != nil, fmt.Sprintf("installedAt %v", inst.Status.InstalledAt)
	})
	inst := h.waitReady(name)
	if _, ok := h.sim.Connection(channelID, inst.Status.AmojoID); !ok {
		t.Error("the channel was not reconnected after the reinstall")
	}
	if n := h.sim.CallCount("connect", ""); n != 2 {
		t.Errorf("%d connects, want one per install", n)
	}
	if string(h.tokenSecret(name).Data[kommov1.TokenKeyAccessToken]) == firstAccess {
		t.Error("the token Secret still holds the first install's token")
	}
	h.waitEvent(name, "Reinstalled")
}

func TestTwoInstallsInARow(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	h.install("acme.kommo.com") // within the same second, usually
	h.eventually("the second install processed", func() (bool, string) {
		inst := h.get(name)
		return inst.Status.InstalledAt != nil && inst.Status.InstalledAt.Equal(&inst.Spec.Authorization.ReceivedAt),
			fmt.Sprintf("installedAt %v, receivedAt %v", inst.Status.InstalledAt, inst.Spec.Authorization.ReceivedAt)
	})
	inst := h.waitReady(name)
	secret := h.tokenSecret(name)
	if _, err := newKommo(t, h).Account(h.ctx, "acme.kommo.com", string(secret.Data[kommov1.TokenKeyAccessToken])); err != nil {
		t.Errorf("the stored token is not valid: %v", err)
	}
	_ = inst
}

func TestChatSettingsChangeReconnects(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	if got := h.waitReady(name).Status.ConnectedChannel.Title; got != integrationName {
		t.Errorf("default title = %q, want the integration's name", got)
	}
	integration := &kommov1.KommoIntegration{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: integrationName}, integration); err != nil {
		t.Fatal(err)
	}
	h.mergePatch(integration, map[string]any{"spec": map[string]any{"chat": map[string]any{"title": "WA Bridge"}}})
	h.eventually("reconnected with the new title", func() (bool, string) {
		inst := h.get(name)
		c := inst.Status.ConnectedChannel
		return c != nil && c.Title == "WA Bridge", fmt.Sprintf("%+v", c)
	})
	if n := h.sim.CallCount("connect", ""); n != 2 {
		t.Errorf("%d connects, want 2", n)
	}
}

func TestRevocation(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)

	// A forged hook: right shape, wrong signature. Nothing changes but a Warning.
	id := strconv.FormatInt(inst.Status.AccountID, 10)
	h.mergePatch(inst, map[string]any{"spec": map[string]any{"revocation": map[string]any{
		"receivedAt": metav1.NewMicroTime(time.Now()), "accountID": id, "clientUUID": h.clientID,
		"signature": kommo.RevokeSignature("not-the-client-secret", h.clientID, id),
	}}})
	h.waitEvent(name, "RevocationIgnored")
	if h.tokenSecret(name) == nil {
		t.Fatal("a forged revocation deleted the tokens")
	}
	h.waitReady(name)

	// The real hook, as Kommo sends it when the account disables the integration.
	q := h.sim.RevokeAccess("acme.kommo.com", h.clientID)
	h.mergePatch(inst, map[string]any{"spec": map[string]any{"revocation": map[string]any{
		"receivedAt": metav1.NewMicroTime(time.Now()), "accountID": q.Get("account_id"),
		"clientUUID": q.Get("client_uuid"), "signature": q.Get("signature"),
	}}})
	inst = h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonRevoked)
	if h.tokenSecret(name) != nil {
		t.Error("the token Secret survived the revocation")
	}
	if len(inst.Finalizers) != 0 || inst.Status.ScopeID != "" {
		t.Errorf("after revocation: finalizers %v, scopeID %q", inst.Finalizers, inst.Status.ScopeID)
	}
	h.waitEvent(name, "Revoked")
	calls := len(h.sim.Calls())

	// No more Kommo calls, even when asked to refresh.
	h.mergePatch(inst, map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest(),
		"test/marker":                        "1",
	}}})
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonRevoked)
	if n := len(h.sim.Calls()); n != calls {
		t.Errorf("%d Kommo calls after the revocation", n-calls)
	}
}

func TestDeleteDisconnectsChannel(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	if err := env.Client.Delete(h.ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.eventually("the installation gone", func() (bool, string) {
		err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(inst), &kommov1.KommoInstallation{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if _, ok := h.sim.Connection(channelID, inst.Status.AmojoID); ok {
		t.Error("the channel is still connected in Kommo")
	}
	if n := h.sim.CallCount("disconnect", ""); n != 1 {
		t.Errorf("%d disconnects", n)
	}
}

func TestDeleteWithoutChatHasNoFinalizer(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	if len(inst.Finalizers) != 0 {
		t.Errorf("finalizers without chat: %v", inst.Finalizers)
	}
	if err := env.Client.Delete(h.ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(inst), &kommov1.KommoInstallation{}); !apierrors.IsNotFound(err) {
		t.Errorf("installation without chat not deleted at once: %v", err)
	}
	if n := h.sim.CallCount("disconnect", ""); n != 0 {
		t.Errorf("%d disconnects without chat", n)
	}
}

func TestInvalidCodeIsTerminal(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.installCode("acme.kommo.com", "def50200-not-a-code-"+randHex(8))
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonInvalidCode)
	h.waitEvent(name, "InstallFailed")
	// The next install works.
	h.install("acme.kommo.com")
	h.waitReady(name)
	if n := h.sim.CallCount("exchange", ""); n != 2 {
		t.Errorf("%d exchanges: the bad code was retried", n)
	}
}

func TestInvalidClientRecoversWhenTheSecretIsFixed(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: h.ns, Name: "wa-bridge-kommo"}
	if err := env.Client.Get(h.ctx, key, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data["client_secret"] = []byte("wrong-" + randHex(8))
	if err := env.Client.Update(h.ctx, secret); err != nil {
		t.Fatal(err)
	}
	name := h.install("acme.kommo.com")
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonInvalidClient)
	h.waitEvent(name, "InvalidClient")
	secret.Data["client_secret"] = []byte(h.secret)
	if err := env.Client.Update(h.ctx, secret); err != nil {
		t.Fatal(err)
	}
	h.waitReady(name)
}

func TestLongLivedToken(t *testing.T) {
	h := newHarness(t, harnessOptions{sim: kommotest.Options{TokenLifetime: 3 * 24 * time.Hour}})
	// A long-lived token is a JWT Kommo issues in the integration's settings; the
	// simulator's access tokens have the same shape.
	tok, err := newKommo(t, h).ExchangeCode(h.ctx, "acme.kommo.com",
		kommo.App{ClientID: h.clientID, ClientSecret: h.secret, RedirectURI: redirectURI}, h.sim.IssueCode("acme.kommo.com", h.clientID))
	if err != nil {
		t.Fatal(err)
	}
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-long-lived", Namespace: h.ns},
		StringData: map[string]string{"token": tok.AccessToken}})
	name := integrationName + ".acme.kommo.com"
	h.create(&kommov1.KommoInstallation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: kommov1.KommoInstallationSpec{
			IntegrationRef: kommov1.LocalObjectReference{Name: integrationName}, AccountDomain: "acme.kommo.com",
			LongLivedTokenSecretRef: &kommov1.SecretKeyRef{Name: "acme-long-lived", Key: "token"},
		},
	})
	inst := h.waitReady(name)
	secret := h.tokenSecret(name)
	if string(secret.Data[kommov1.TokenKeyAccessToken]) != tok.AccessToken {
		t.Error("token Secret does not hold the long-lived token")
	}
	if _, ok := secret.Data[kommov1.TokenKeyRefreshToken]; ok {
		t.Error("long-lived token Secret has a refresh_token")
	}
	if inst.Status.ScopeID == "" || inst.Labels[kommov1.LabelIntegration] != integrationName {
		t.Errorf("long-lived install not connected or not labelled: %+v %v", inst.Status, inst.Labels)
	}
	if inst.Status.RefreshTime != nil || h.sim.CallCount("refresh", "") != 0 {
		t.Error("a long-lived token was scheduled for refresh")
	}
	h.waitEvent(name, "TokenExpiring")
}

func TestForbiddenDomainNeverContactsTheHost(t *testing.T) {
	h := newHarness(t, harnessOptions{domains: []string{"amocrm.ru"}, noChat: true})
	name := h.installCode("acme.kommo.com", "def50200"+randHex(8))
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonForbiddenDomain)
	if n := len(h.sim.Calls()); n != 0 {
		t.Errorf("%d requests reached a host outside accountDomains", n)
	}
}

func TestInstallationMetrics(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	labels := map[string]string{"namespace": h.ns, "name": name}
	h.eventually("the gauges", func() (bool, string) {
		expiry, ready := gauge(t, "kommo_installation_token_expiry_timestamp_seconds", labels), gauge(t, "kommo_installation_ready", labels)
		return expiry == float64(inst.Status.AccessTokenExpiresAt.Unix()) && ready == 1, fmt.Sprintf("expiry %v ready %v", expiry, ready)
	})

	// The gauges follow the installation's updates.
	refreshed := h.requestRefresh(name)
	if refreshed.Status.AccessTokenExpiresAt.Equal(inst.Status.AccessTokenExpiresAt) {
		t.Fatalf("the refresh kept the expiry %v: nothing to follow", inst.Status.AccessTokenExpiresAt)
	}
	h.eventually("the gauges after a refresh", func() (bool, string) {
		expiry := gauge(t, "kommo_installation_token_expiry_timestamp_seconds", labels)
		return expiry == float64(refreshed.Status.AccessTokenExpiresAt.Unix()), fmt.Sprintf("expiry %v", expiry)
	})

	// Deleted installations leave no series behind.
	if err := env.Client.Delete(h.ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.eventually("the series gone", func() (bool, string) {
		families, _ := metrics.Registry.Gather()
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "name" && l.GetValue() == name {
						return false, f.GetName()
					}
				}
			}
		}
		return true, ""
	})
}

// refreshRequest is a refresh-requested-at value as `date -u +%FT%TZ` would give a second
// from now: whole seconds, after the install.
func refreshRequest() string { return time.Now().Add(time.Second).UTC().Format(time.RFC3339) }
