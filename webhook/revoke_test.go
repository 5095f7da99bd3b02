package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// The derived vector of KOMMO_API.md: not verified here, only carried.
const (
	testAccountID = "32720107"
	testSignature = "56085d36424bc5ba9107165909dd0b11e9d32595b52da36c1efc55fb5a9538d0"
)

// installAndLabel installs account host through the webhook and labels the installation
// with accountID, as the controller does once it knows the id.
func (h *harness) installAndLabel(ns, integ, host, accountID string) *kommov1.KommoInstallation {
	h.t.Helper()
	if resp := h.get(redirectPath(ns, integ), installQuery(host, testCode(host+accountID))); resp.status != http.StatusOK {
		h.t.Fatalf("install: %d %q", resp.status, resp.body)
	}
	inst := getInstallation(h.t, ns, integ+"."+host)
	patch := []byte(`{"metadata":{"labels":{"` + kommov1.LabelAccountID + `":"` + accountID + `"}}}`)
	if err := env.Client.Patch(context.Background(), inst, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		h.t.Fatal(err)
	}
	h.waitCached(client.ObjectKeyFromObject(inst), &kommov1.KommoInstallation{}, nil)
	cached := &kommov1.KommoInstallation{}
	h.waitCached(client.ObjectKeyFromObject(inst), cached, func() bool { return cached.Labels[kommov1.LabelAccountID] == accountID })
	return getInstallation(h.t, ns, inst.Name)
}

func revokeQuery(clientParam, accountID, signature string) url.Values {
	return url.Values{clientParam: {testClientID}, "account_id": {accountID}, "signature": {signature}}
}

func TestRevoke(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	inst := h.installAndLabel(ns, "bridge", "acme.kommo.com", testAccountID)
	other := h.installAndLabel(ns, "bridge", "other.kommo.com", "999")
	recorded := requests(routeRevoke, outcomeRecorded)

	before := time.Now().Add(-time.Second)
	resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature))
	if resp.status != http.StatusOK || resp.body != "ok\n" {
		t.Fatalf("revoke: %d %q", resp.status, resp.body)
	}
	got := getInstallation(t, ns, inst.Name)
	rev := got.Spec.Revocation
	if rev == nil {
		t.Fatal("spec.revocation not recorded")
	}
	if rev.AccountID != testAccountID || rev.ClientUUID != testClientID || rev.Signature != testSignature {
		t.Errorf("revocation %+v", rev)
	}
	if rev.ReceivedAt.Time.Before(before) || !inst.Spec.Authorization.ReceivedAt.Before(&rev.ReceivedAt) {
		t.Errorf("revocation receivedAt %v not after the install %v", rev.ReceivedAt, inst.Spec.Authorization.ReceivedAt)
	}
	if got.Spec.Authorization.CodeSecretRef != inst.Spec.Authorization.CodeSecretRef {
		t.Error("the revoke hook changed spec.authorization")
	}
	if o := getInstallation(t, ns, other.Name); o.Spec.Revocation != nil {
		t.Error("another account's installation was revoked")
	}
	if d := requests(routeRevoke, outcomeRecorded) - recorded; d != 1 {
		t.Errorf("recorded counted %v times", d)
	}

	// The same hook again, nothing installed since: a duplicate, not re-patched.
	cached := &kommov1.KommoInstallation{}
	h.waitCached(client.ObjectKeyFromObject(got), cached, func() bool { return cached.Spec.Revocation != nil })
	dups := requests(routeRevoke, outcomeDuplicate)
	if resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusOK {
		t.Fatalf("repeat: %d", resp.status)
	}
	if again := getInstallation(t, ns, inst.Name); again.ResourceVersion != got.ResourceVersion {
		t.Errorf("a repeated hook re-patched: %v → %v", rev.ReceivedAt, again.Spec.Revocation.ReceivedAt)
	}
	if d := requests(routeRevoke, outcomeDuplicate) - dups; d != 1 {
		t.Errorf("duplicate counted %v times", d)
	}

	// Reinstall, then revoke again with the legacy parameter name: a new revocation.
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("reinstall"))); resp.status != http.StatusOK {
		t.Fatalf("reinstall: %d", resp.status)
	}
	reinstalled := getInstallation(t, ns, inst.Name)
	h.waitCached(client.ObjectKeyFromObject(got), cached, func() bool { return cached.ResourceVersion == reinstalled.ResourceVersion })
	if resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_id", testAccountID, testSignature)); resp.status != http.StatusOK {
		t.Fatalf("legacy revoke: %d %q", resp.status, resp.body)
	}
	final := getInstallation(t, ns, inst.Name)
	if final.Spec.Revocation == nil || !reinstalled.Spec.Authorization.ReceivedAt.Before(&final.Spec.Revocation.ReceivedAt) {
		t.Errorf("revocation after the reinstall not recorded: %+v", final.Spec.Revocation)
	}
	if final.Spec.Revocation.ClientUUID != testClientID {
		t.Errorf("legacy client_id not recorded as clientUUID: %+v", final.Spec.Revocation)
	}
	assertNoLeak(t, testCode("reinstall"))
}

func TestRevokeUnknownAccountWritesNothing(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	inst := h.installAndLabel(ns, "bridge", "acme.kommo.com", testAccountID)
	notFound := requests(routeRevoke, outcomeNotFound)

	resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", "123456", testSignature))
	if resp.status != http.StatusOK {
		t.Fatalf("unknown account: %d %q", resp.status, resp.body)
	}
	if d := requests(routeRevoke, outcomeNotFound) - notFound; d != 1 {
		t.Errorf("not_found counted %v times", d)
	}
	if got := getInstallation(t, ns, inst.Name); got.ResourceVersion != inst.ResourceVersion {
		t.Error("a revoke hook for another account changed the installation")
	}

	rejected := requests(routeRevoke, outcomeRejected)
	for name, q := range map[string]url.Values{
		"no client":           {"account_id": {testAccountID}, "signature": {testSignature}},
		"account not numeric": revokeQuery("client_uuid", "12ab", testSignature),
		"account too long":    revokeQuery("client_uuid", "123456789012345678901", testSignature),
		"signature not hex":   revokeQuery("client_uuid", testAccountID, "zz"+testSignature),
		"signature too long":  revokeQuery("client_uuid", testAccountID, testSignature+testSignature+"00"),
		"no signature":        {"client_uuid": {testClientID}, "account_id": {testAccountID}},
		"two account ids":     {"client_uuid": {testClientID}, "account_id": {testAccountID, "1"}, "signature": {testSignature}},
	} {
		if resp := h.get(revokePath(ns, "bridge"), q); resp.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, resp.status)
		}
	}
	if d := requests(routeRevoke, outcomeRejected) - rejected; d != 7 {
		t.Errorf("rejected counted %v times, want 7", d)
	}
	if resp := h.get(revokePath(ns, "nope"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusNotFound {
		t.Errorf("unknown integration: %d", resp.status)
	}
	if got := getInstallation(t, ns, inst.Name); got.ResourceVersion != inst.ResourceVersion {
		t.Error("a rejected revoke hook changed the installation")
	}
	if secrets, insts := objects(t, ns); len(secrets) != 1 || len(insts) != 1 {
		t.Errorf("%d Secrets and %d installations, want the install's one each", len(secrets), len(insts))
	}
}

// clockAt is a webhook clock that runs off by offset: replicas' clocks disagree.
func clockAt(offset time.Duration) func(*Server) {
	return func(s *Server) { s.now = func() time.Time { return time.Now().Add(offset) } }
}

// A revocation follows the install the object held when it was recorded, whatever the
// clocks of the replicas that recorded the install and the hook.
func TestRevocationsAreOrderedByWhatTheObjectHeld(t *testing.T) {
	ahead := startWebhook(t, nil, testOptions(), clockAt(time.Hour))
	behind := startWebhook(t, nil, testOptions(), clockAt(-time.Hour))
	ns := env.Namespace(t)
	ahead.createIntegration(ns, "bridge")
	behind.waitCached(client.ObjectKey{Namespace: ns, Name: "bridge"}, &kommov1.KommoIntegration{}, nil)
	inst := ahead.installAndLabel(ns, "bridge", "acme.kommo.com", testAccountID)
	key := client.ObjectKeyFromObject(inst)
	behind.waitCached(key, &kommov1.KommoInstallation{}, nil)
	first := wantSecretName(ns, "bridge", "acme.kommo.com", testCode("acme.kommo.com"+testAccountID))

	if resp := ahead.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusOK {
		t.Fatalf("revoke: %d %q", resp.status, resp.body)
	}
	if rev := getInstallation(t, ns, inst.Name).Spec.Revocation; rev == nil || rev.Supersedes != first {
		t.Fatalf("revocation %+v does not supersede the install it followed", rev)
	}

	// A reinstall, then the same hook again through the replica whose clock is behind:
	// its receivedAt is older than the first hook's, and it is recorded all the same.
	if resp := ahead.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("again"))); resp.status != http.StatusOK {
		t.Fatalf("reinstall: %d %q", resp.status, resp.body)
	}
	reinstalled := getInstallation(t, ns, inst.Name)
	cached := &kommov1.KommoInstallation{}
	behind.waitCached(key, cached, func() bool { return cached.ResourceVersion == reinstalled.ResourceVersion })
	recorded := requests(routeRevoke, outcomeRecorded)
	if resp := behind.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusOK {
		t.Fatalf("revoke after the reinstall: %d %q", resp.status, resp.body)
	}
	if d := requests(routeRevoke, outcomeRecorded) - recorded; d != 1 {
		t.Fatalf("the hook after the reinstall was not recorded (recorded +%v)", d)
	}
	got := getInstallation(t, ns, inst.Name)
	second := wantSecretName(ns, "bridge", "acme.kommo.com", testCode("again"))
	if rev := got.Spec.Revocation; rev == nil || rev.Supersedes != second {
		t.Fatalf("revocation %+v does not supersede the reinstall", rev)
	}

	// The same hook again, through either replica, with nothing installed since: a
	// duplicate, nothing written.
	for _, h := range []*harness{behind, ahead} {
		h.waitCached(key, cached, func() bool { return cached.ResourceVersion == got.ResourceVersion })
		dups := requests(routeRevoke, outcomeDuplicate)
		if resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusOK {
			t.Fatalf("repeat: %d %q", resp.status, resp.body)
		}
		if d := requests(routeRevoke, outcomeDuplicate) - dups; d != 1 {
			t.Errorf("repeat not counted as a duplicate (+%v)", d)
		}
		if again := getInstallation(t, ns, inst.Name); again.ResourceVersion != got.ResourceVersion {
			t.Errorf("a repeated hook re-patched the installation: %+v", again.Spec.Revocation)
		}
	}
}

// A revoke hook that overtakes the controller's account lookup is recorded on the
// installations whose account is not known yet, the newest first and a bounded number.
func TestRevokeBeforeTheAccountIDIsKnown(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	labelled := h.installAndLabel(ns, "bridge", "known.kommo.com", "999")
	var names []string
	for i := range maxUnlabelledRevocations + 3 {
		host := fmt.Sprintf("new%02d.kommo.com", i)
		if resp := h.get(redirectPath(ns, "bridge"), installQuery(host, testCode(host))); resp.status != http.StatusOK {
			t.Fatalf("install %s: %d %q", host, resp.status, resp.body)
		}
		names = append(names, "bridge."+host)
	}
	last := getInstallation(t, ns, names[len(names)-1])
	h.waitCached(client.ObjectKeyFromObject(last), &kommov1.KommoInstallation{}, nil)

	recorded := requests(routeRevoke, outcomeRecorded)
	if resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusOK {
		t.Fatalf("revoke: %d %q", resp.status, resp.body)
	}
	if d := requests(routeRevoke, outcomeRecorded) - recorded; d != 1 {
		t.Errorf("recorded counted %v times, want 1", d)
	}
	for i, name := range names {
		got := getInstallation(t, ns, name)
		rev := got.Spec.Revocation
		newest := i >= len(names)-maxUnlabelledRevocations
		switch {
		case newest && rev == nil:
			t.Errorf("%s: the hook was dropped", name)
		case newest && (rev.AccountID != testAccountID || rev.Supersedes != got.Spec.Authorization.CodeSecretRef.Name):
			t.Errorf("%s: revocation %+v", name, rev)
		case !newest && rev != nil:
			t.Errorf("%s: recorded beyond the bound of %d", name, maxUnlabelledRevocations)
		}
	}
	if got := getInstallation(t, ns, labelled.Name); got.Spec.Revocation != nil {
		t.Error("the hook was recorded on an installation labelled with another account")
	}
}

// An installation that was unlabelled when the hook came, and is labelled with another
// account by the time the hook is written, is left alone.
func TestRevokeSkipsAnInstallationLabelledMeanwhile(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	inst := h.installAndLabel(ns, "bridge", "acme.kommo.com", "999")
	rev := kommov1.Revocation{ReceivedAt: metav1.NowMicro(), AccountID: testAccountID, ClientUUID: testClientID, Signature: testSignature}
	outcome, err := h.srv.recordRevocation(context.Background(),
		[]revocationTarget{{key: client.ObjectKeyFromObject(inst), unlabelled: true}}, rev, h.srv.log)
	if err != nil || outcome != outcomeDuplicate {
		t.Fatalf("outcome %q, %v; want nothing recorded", outcome, err)
	}
	if got := getInstallation(t, ns, inst.Name); got.Spec.Revocation != nil {
		t.Errorf("recorded on another account's installation: %+v", got.Spec.Revocation)
	}
	// Labelled with the hook's account, it is recorded.
	mine := h.installAndLabel(ns, "bridge", "mine.kommo.com", testAccountID)
	outcome, err = h.srv.recordRevocation(context.Background(),
		[]revocationTarget{{key: client.ObjectKeyFromObject(mine), unlabelled: true}}, rev, h.srv.log)
	if err != nil || outcome != outcomeRecorded {
		t.Fatalf("outcome %q, %v; want recorded", outcome, err)
	}
}
