package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// condition returns the installation's condition of type typ, failing when absent.
func condition(t *testing.T, inst *kommov1.KommoInstallation, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(inst.Status.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, inst.Status.Conditions)
	}
	return *c
}

// requestRefresh asks for a refresh through the annotation and waits until one more
// refresh succeeded.
func (h *harness) requestRefresh(name string) *kommov1.KommoInstallation {
	h.t.Helper()
	before := h.get(name).Status.LastRefreshTime
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest(),
	}}})
	var inst *kommov1.KommoInstallation
	h.eventually("a refresh", func() (bool, string) {
		inst = h.get(name)
		last := inst.Status.LastRefreshTime
		return last != nil && (before == nil || last.After(before.Time)), fmt.Sprintf("lastRefreshTime %v, backoffs %+v", last, inst.Status.Backoffs)
	})
	return inst
}

// One unauthenticated GET of the public Redirect URI with a made-up code must not break a
// working installation: the attempt fails visibly, the grant goes on being refreshed.
func TestForgedInstallKeepsTheWorkingGrant(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	good := h.waitReady(name)
	access := string(h.tokenSecret(name).Data[kommov1.TokenKeyAccessToken])

	h.installWith("acme.kommo.com", "def50200made-up-"+randHex(8), func(a *kommov1.Authorization) { a.FromWidget = true })
	h.eventually("the forged attempt failed", func() (bool, string) {
		a := h.get(name).Status.LastAttempt
		return a != nil && a.Result == kommov1.OutcomeFailed, fmt.Sprintf("%+v", a)
	})
	inst := h.get(name)
	if c := condition(t, inst, kommov1.ConditionInstalled); c.Status != metav1.ConditionFalse || c.Reason != kommov1.ReasonInvalidCode {
		t.Errorf("Installed = %s/%s, want False/InvalidCode", c.Status, c.Reason)
	}
	inst = h.waitReady(name)
	if c := condition(t, inst, kommov1.ConditionAuthorized); c.Status != metav1.ConditionTrue {
		t.Errorf("Authorized = %s/%s after a forged install", c.Status, c.Reason)
	}
	if got := string(h.tokenSecret(name).Data[kommov1.TokenKeyAccessToken]); got != access {
		t.Error("the forged install replaced the tokens")
	}
	if !inst.Status.InstalledAt.Equal(good.Status.InstalledAt) || inst.Status.ScopeID != good.Status.ScopeID {
		t.Errorf("the forged install changed the grant: installedAt %v → %v", good.Status.InstalledAt, inst.Status.InstalledAt)
	}
	h.waitEvent(name, "InstallFailed")

	// The grant is still refreshed, and the forged code was tried once.
	h.requestRefresh(name)
	h.waitReady(name)
	if n := h.sim.CallCount("exchange", ""); n != 2 {
		t.Errorf("%d exchanges, want the real one and the forged one once", n)
	}
	if n := h.sim.CallCount("connect", ""); n != 1 {
		t.Errorf("%d connects: a failed attempt reconnected", n)
	}
}

// A validly signed hook is a claim: replayed after a reinstall it must not revoke the new
// grant, because the tokens still work.
func TestReplayedRevocationIsConfirmedAndIgnored(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	q := h.sim.RevokeAccess("acme.kommo.com", h.clientID)
	hook := func(inst *kommov1.KommoInstallation) map[string]any {
		return map[string]any{"spec": map[string]any{"revocation": map[string]any{
			"receivedAt": metav1.NewMicroTime(time.Now()), "accountID": q.Get("account_id"),
			"clientUUID": q.Get("client_uuid"), "signature": q.Get("signature"),
			"supersedes": inst.Spec.Authorization.CodeSecretRef.Name,
		}}}
	}
	h.mergePatch(inst, hook(inst))
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonRevoked)

	// The account installs again; then someone replays the hook they saw.
	h.install("acme.kommo.com")
	inst = h.waitReady(name)
	h.mergePatch(inst, hook(inst))
	h.eventually("the replay decided", func() (bool, string) {
		r := h.get(name).Status.LastRevocation
		return r != nil && r.Result == kommov1.OutcomeIgnored, fmt.Sprintf("%+v", r)
	})
	inst = h.waitReady(name)
	if r := inst.Status.LastRevocation; r.Reason != kommov1.ReasonNotConfirmed {
		t.Errorf("replay ignored with reason %s, want NotConfirmed", r.Reason)
	}
	if h.tokenSecret(name) == nil {
		t.Fatal("a replayed hook deleted the tokens")
	}
	h.waitEvent(name, "RevocationIgnored")
	if got := gauge(t, "kommo_revocation_hooks_total", map[string]string{"result": "ignored", "reason": "NotConfirmed"}); got < 1 {
		t.Errorf("kommo_revocation_hooks_total{ignored,NotConfirmed} = %v", got)
	}

	// A hook recorded before the latest install ends nothing, without asking Kommo.
	calls := h.sim.CallCount("account", "")
	old := hook(inst)
	old["spec"].(map[string]any)["revocation"].(map[string]any)["supersedes"] = "kommo-code-of-an-earlier-install"
	h.mergePatch(inst, old)
	h.eventually("the stale hook decided", func() (bool, string) {
		r := h.get(name).Status.LastRevocation
		return r != nil && r.Reason == kommov1.ReasonSuperseded, fmt.Sprintf("%+v", r)
	})
	if n := h.sim.CallCount("account", ""); n != calls {
		t.Errorf("a superseded hook cost %d Kommo calls", n-calls)
	}
}

// A revocation recorded before the account id was looked up is decided once it is known.
func TestRevocationBeforeTheAccountIsKnown(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	h.sim.Inject(kommotest.Fault{Op: "account", Status: 503, Times: 1000})
	name := h.install("acme.kommo.com")
	h.eventually("the code exchanged", func() (bool, string) {
		return h.tokenSecret(name) != nil, "no token Secret"
	})
	inst := h.get(name)
	if inst.Labels[kommov1.LabelAccountID] != "" {
		t.Fatal("the account id is known already")
	}
	q := h.sim.RevokeAccess("acme.kommo.com", h.clientID)
	h.mergePatch(inst, map[string]any{"spec": map[string]any{"revocation": map[string]any{
		"receivedAt": metav1.NewMicroTime(time.Now()), "accountID": q.Get("account_id"),
		"clientUUID": q.Get("client_uuid"), "signature": q.Get("signature"),
		"supersedes": inst.Spec.Authorization.CodeSecretRef.Name,
	}}})
	h.sim.ClearFaults()
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonRevoked)
	if h.tokenSecret(name) != nil {
		t.Error("the tokens survived a confirmed revocation")
	}
}

// A Chats API outage must not become a CRM outage: tokens keep being refreshed while the
// connect fails, and the channel connects once amojo is back.
func TestChatsOutageDoesNotStopRefresh(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.sim.Inject(kommotest.Fault{Op: "connect", Status: 503, Times: 1000})
	name := h.install("acme.kommo.com")
	inst := h.waitCondition(name, kommov1.ConditionChannelConnected, metav1.ConditionFalse, kommov1.ReasonKommoUnavailable)
	if c := condition(t, inst, kommov1.ConditionAuthorized); c.Status != metav1.ConditionTrue {
		t.Errorf("Authorized = %s/%s during a Chats outage", c.Status, c.Reason)
	}
	h.requestRefresh(name)
	h.requestRefresh(name)
	if n := h.sim.CallCount("refresh", ""); n != 2 {
		t.Errorf("%d refreshes, want 2", n)
	}
	h.sim.ClearFaults()
	h.waitReady(name)
}

// A chat problem on our side (missing channel secret) does not stop the refresh either.
func TestMissingChannelSecretDoesNotStopRefresh(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	integration := &kommov1.KommoIntegration{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: integrationName}, integration); err != nil {
		t.Fatal(err)
	}
	h.mergePatch(integration, map[string]any{"spec": map[string]any{"chat": map[string]any{
		"secretRef": map[string]any{"name": "no-such-secret", "key": "channel_secret"}}}})
	name := h.install("acme.kommo.com")
	h.waitCondition(name, kommov1.ConditionChannelConnected, metav1.ConditionFalse, kommov1.ReasonSecretNotFound)
	h.requestRefresh(name)
}

// A 401 on the account lookup refreshes the tokens (once) instead of retrying the dead token.
func TestAccountLookup401Refreshes(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	h.sim.Inject(kommotest.Fault{Op: "account", Status: 401})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	h.eventually("the account looked up", func() (bool, string) {
		inst = h.get(name)
		return inst.Status.AccountID != 0, "no account id"
	})
	if n := h.sim.CallCount("refresh", ""); n != 1 {
		t.Errorf("%d refreshes after a 401 on the account lookup, want 1", n)
	}
}

// An account that renames its subdomain is followed: one lookup, the refresh continues at
// the new host, the name stays.
func TestRenamedSubdomainIsFollowed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	h.sim.Rename("acme.kommo.com", "acme2.kommo.com")
	inst := h.requestRefresh(name)
	if inst.Status.AccountDomain != "acme2.kommo.com" {
		t.Errorf("status.accountDomain = %q, want the new host", inst.Status.AccountDomain)
	}
	inst = h.waitReady(name)
	h.eventually("the token Secret moved", func() (bool, string) {
		got := string(h.tokenSecret(name).Data[kommov1.TokenKeyAccountDomain])
		return got == "acme2.kommo.com", got
	})
	if n := h.sim.CallCount("subdomain", ""); n != 1 {
		t.Errorf("%d subdomain lookups, want 1", n)
	}
	if n := h.sim.CallCount("refresh", "acme2.kommo.com"); n != 1 {
		t.Errorf("%d refreshes at the new host, want 1", n)
	}
	h.waitEvent(name, "AccountRenamed")
	// Later refreshes go to the new host directly.
	h.requestRefresh(name)
	if n := h.sim.CallCount("refresh", "acme.kommo.com"); n != 1 {
		t.Errorf("%d refreshes at the old host, want only the first", n)
	}
	if n := h.sim.CallCount("subdomain", ""); n != 1 {
		t.Errorf("%d subdomain lookups after the move", n)
	}
	_ = inst
}

// A failed rename lookup is bounded: one lookup per failure, never a loop.
func TestGoneAccountIsNotLookedUpInALoop(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	h.sim.Inject(kommotest.Fault{Op: "refresh", Status: 404, Times: 1000})
	h.sim.Inject(kommotest.Fault{Op: "subdomain", Status: 401, Times: 1000})
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest()}}})
	h.eventually("the refresh failing", func() (bool, string) {
		b := backoff(h.get(name), "Refresh")
		return b != nil && b.FailedAttempts >= 2, fmt.Sprintf("%+v", b)
	})
	refreshes, lookups := h.sim.CallCount("refresh", ""), h.sim.CallCount("subdomain", "")
	if lookups > refreshes {
		t.Errorf("%d subdomain lookups for %d failed refreshes", lookups, refreshes)
	}
	// Ready while the access token lasts.
	if c := condition(t, h.waitReady(name), kommov1.ConditionAuthorized); c.Reason != kommov1.ReasonRefreshFailing {
		t.Errorf("Authorized reason %s, want RefreshFailing", c.Reason)
	}
}

// A 404 on the exchange means there is no such account: the attempt fails for good with
// AccountNotFound, not a channel reason.
func TestExchange404IsAccountNotFound(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	h.sim.AddAccount("gone.kommo.com", 4242, "4242abcd-0000-4000-8000-000000000000")
	code := h.sim.IssueCode("gone.kommo.com", h.clientID)
	h.sim.Rename("gone.kommo.com", "moved.kommo.com")
	name := h.installCode("gone.kommo.com", code)
	inst := h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonAccountNotFound)
	if a := inst.Status.LastAttempt; a == nil || a.Result != kommov1.OutcomeFailed {
		t.Errorf("lastAttempt = %+v", a)
	}
	if n := h.sim.CallCount("exchange", ""); n != 1 {
		t.Errorf("%d exchanges of a code for a missing account", n)
	}
}

// A transient refresh failure keeps Ready while the access token is valid, and turns it
// False when the token actually expires — like a certificate that is still valid.
func TestRefreshFailureKeepsReadyUntilExpiry(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	failures := gauge(t, "kommo_token_refresh_total", map[string]string{"result": "failure"})
	h.sim.Inject(kommotest.Fault{Op: "refresh", Status: 503, Times: 1000})

	// Past the planned refresh, before expiry.
	h.clock.Advance(inst.Status.RefreshTime.Sub(time.Now()) + time.Minute)
	h.poke(name)
	inst = h.waitCondition(name, kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonRefreshFailing)
	if c := condition(t, inst, kommov1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %s/%s while the access token is valid", c.Status, c.Reason)
	}
	if got := gauge(t, "kommo_token_refresh_total", map[string]string{"result": "failure"}); got <= failures {
		t.Errorf("kommo_token_refresh_total{failure} did not grow: %v", got)
	}

	// Past expiry.
	h.clock.Advance(inst.Status.AccessTokenExpiresAt.Sub(h.clock.Now()) + time.Minute)
	h.poke(name)
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonKommoUnavailable)

	// Kommo back, and the clock with it (the simulator issues tokens in real time).
	h.clock.Advance(-h.clock.Now().Sub(time.Now()))
	h.sim.ClearFaults()
	h.poke(name)
	h.waitReady(name)
}

// A client secret rotated in Kommo: refreshes fail with InvalidClient until the Secret is
// updated, and the fix is tried within seconds, not after the configuration backoff.
func TestRotatedClientSecretIsPickedUpPromptly(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true, backoffScale: 1})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	rotated := "rotated-" + randHex(16)
	h.sim.RotateClientSecret(h.clientID, rotated)
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest()}}})
	h.waitCondition(name, kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonRefreshFailing)
	h.waitEvent(name, "InvalidClient")
	if b := backoff(h.get(name), "Refresh"); b == nil || b.Reason != kommov1.ReasonInvalidClient {
		t.Fatalf("refresh backoff = %+v, want InvalidClient", b)
	}

	secret := &corev1.Secret{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "wa-bridge-kommo"}, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data["client_secret"] = []byte(rotated)
	if err := env.Client.Update(h.ctx, secret); err != nil {
		t.Fatal(err)
	}
	fixed := time.Now()
	h.waitCondition(name, kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonAuthorized)
	// The configuration backoff is a minute; the fix must not wait for it.
	if d := time.Since(fixed); d > 40*time.Second {
		t.Errorf("the fixed Secret was used after %s", d)
	}
	h.secret = rotated
}

// Forged installs of accounts that never installed leave nothing behind.
func TestFailedInstallWithoutGrantIsCollected(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.installCode("victim.kommo.com", "def50200forged-"+randHex(8))
	inst := h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonInvalidCode)
	codeSecret := inst.Spec.Authorization.CodeSecretRef.Name

	// A working installation with a failed reinstall is never collected.
	kept := h.install("acme.kommo.com")
	h.waitReady(kept)
	h.installCode("acme.kommo.com", "def50200forged-"+randHex(8))
	h.eventually("the forged reinstall failed", func() (bool, string) {
		a := h.get(kept).Status.LastAttempt
		return a != nil && a.Result == kommov1.OutcomeFailed, fmt.Sprintf("%+v", a)
	})

	h.clock.Advance(2 * time.Hour)
	h.poke(name)
	h.poke(kept)
	h.eventually("the failed installation collected", func() (bool, string) {
		err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, &kommov1.KommoInstallation{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: codeSecret}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the forged install's code Secret is still there: %v", err)
	}
	h.waitReady(kept)
}

// Changing the channel disconnects the old one, signed with its own secret, and connects
// the new one.
func TestChannelChangeDisconnectsTheOldChannel(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	const newChannel = "9b1d0f4e-2c3a-4b5d-8e6f-7a8b9c0d1e2f"
	newSecret := randHex(20)
	h.sim.AddChannel(newChannel, newSecret)
	h.sim.BindChannel(newChannel, h.clientID)
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new-channel", Namespace: h.ns},
		StringData: map[string]string{"secret": newSecret}})
	integration := &kommov1.KommoIntegration{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: integrationName}, integration); err != nil {
		t.Fatal(err)
	}
	h.mergePatch(integration, map[string]any{"spec": map[string]any{"chat": map[string]any{
		"channelID": newChannel, "secretRef": map[string]any{"name": "new-channel", "key": "secret"}}}})
	h.eventually("connected to the new channel", func() (bool, string) {
		c := h.get(name).Status.ConnectedChannel
		return c != nil && c.ChannelID == newChannel, fmt.Sprintf("%+v", c)
	})
	inst = h.waitReady(name)
	if _, ok := h.sim.Connection(channelID, inst.Status.AmojoID); ok {
		t.Error("the old channel is still connected")
	}
	if scope, ok := h.sim.Connection(newChannel, inst.Status.AmojoID); !ok || scope != inst.Status.ScopeID {
		t.Errorf("new channel connection %q %v, status scope %q", scope, ok, inst.Status.ScopeID)
	}
	h.waitEvent(name, "ChannelDisconnected")
}

// Deleting an installation whose KommoIntegration is gone ends, with an event that says
// what could not be done.
func TestDeleteAfterTheIntegrationIsGone(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	inst := h.waitReady(name)
	integration := &kommov1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Name: integrationName, Namespace: h.ns}}
	if err := env.Client.Delete(h.ctx, integration); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(h.ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.eventually("the installation gone", func() (bool, string) {
		err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(inst), &kommov1.KommoInstallation{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	h.eventually("the event", func() (bool, string) {
		notes := h.events(name)["DisconnectFailed"]
		return len(notes) == 1 && strings.Contains(notes[0], "KommoIntegration is gone"), fmt.Sprint(notes)
	})
}

// An account that disables the integration and installs again gets a working grant and
// channel again.
func TestDisableAndInstallAgain(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	h.sim.RevokeAccess("acme.kommo.com", h.clientID) // the hook is lost: the tokens just die
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest()}}})
	h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonReinstallRequired)
	h.install("acme.kommo.com")
	inst := h.waitReady(name)
	if _, ok := h.sim.Connection(channelID, inst.Status.AmojoID); !ok {
		t.Error("the channel was not connected again")
	}
}

// Stopping the controller (SIGTERM, a rollout) while a refresh is on the wire loses
// nothing: the call finishes, its pair is written, and the next controller refreshes with
// it — no spent refresh token is ever sent again.
func TestShutdownMidRefreshWritesThePair(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	before := string(h.tokenSecret(name).Data[kommov1.TokenKeyRefreshToken])
	h.sim.Inject(kommotest.Fault{Op: "refresh", Latency: 2 * time.Second})
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest()}}})
	h.eventually("the refresh on the wire", func() (bool, string) {
		return h.sim.PendingFaults() == 0, "not sent yet"
	})
	h.stopController() // cancels the manager's context mid-call; it waits for the reconcile
	after := string(h.tokenSecret(name).Data[kommov1.TokenKeyRefreshToken])
	if after == before {
		t.Fatal("the refreshed pair was not written before the controller stopped")
	}
	h.startController()
	h.requestRefresh(name)
	if n := h.sim.UsedRefreshTokenReplays(); n != 0 {
		t.Errorf("a spent refresh token was sent %d times", n)
	}
	if n := h.sim.CallCount("refresh", ""); n != 2 {
		t.Errorf("%d refreshes, want 2", n)
	}
}

// During a change of leader two replicas may run for a moment: a refresh another replica
// has fenced is not sent again until that replica wrote its pair or the fence is older
// than a single-use call can take.
func TestAnotherReplicasRefreshIsNotRepeated(t *testing.T) {
	h := newHarness(t, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	secret := h.tokenSecret(name)
	secret.Annotations["kommo-operator.io/refreshing"] = "other-replica " + h.clock.Now().UTC().Format(time.RFC3339Nano)
	if err := env.Client.Update(h.ctx, secret); err != nil {
		t.Fatal(err)
	}
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: refreshRequest()}}})
	h.eventually("the controller waiting on the fence", func() (bool, string) {
		return strings.Contains(h.logs.String(), "Another replica is refreshing"), "no wait logged"
	})
	if n := h.sim.CallCount("refresh", ""); n != 0 {
		t.Fatalf("%d refreshes under another replica's fence", n)
	}
	// The other replica died: its fence runs out and the refresh goes ahead.
	h.clock.Advance(2 * time.Minute)
	h.poke(name)
	h.eventually("the refresh", func() (bool, string) {
		return h.get(name).Status.LastRefreshTime != nil, "not refreshed"
	})
	if fence := h.tokenSecret(name).Annotations["kommo-operator.io/refreshing"]; fence != "" {
		t.Errorf("the fence %q stayed after the refresh", fence)
	}
}
