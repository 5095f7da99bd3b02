package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// wantSecretName restates the documented naming rule independently of codeSecretName.
func wantSecretName(ns, integ, host, code string) string {
	sum := sha256.Sum256([]byte(ns + "/" + integ + "/" + host + "/" + code))
	return "kommo-code-" + hex.EncodeToString(sum[:])[:32]
}

func TestInstall(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	integ := h.createIntegration(ns, "wa-bridge")
	code, state := testCode("install"), "v1.1700000000.nonce-123.abcdef"
	recorded := requests(routeRedirect, outcomeRecorded)

	before := time.Now().Add(-time.Second)
	resp := h.get(redirectPath(ns, "wa-bridge"), installQuery("acme.kommo.com", code, "state", state, "client_id", testClientID, "platform", "2"),
		"Accept", "text/html,application/xhtml+xml")
	after := time.Now().Add(time.Second)

	if resp.status != http.StatusOK {
		t.Fatalf("status %d, body %q", resp.status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := resp.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q is not strict", csp)
	}
	// The controller has not exchanged the code yet: the page must not claim it is done.
	if !strings.Contains(resp.body, "Installation received") || !strings.Contains(resp.body, "being completed") ||
		strings.Contains(resp.body, "installed") {
		t.Errorf("page does not say the install was received and is being completed: %q", resp.body)
	}
	for _, v := range []string{code, code[:16], state, "acme.kommo.com"} {
		if strings.Contains(resp.body, v) {
			t.Errorf("page echoes a query value (%.16s)", v)
		}
	}

	// The code Secret.
	secretName := wantSecretName(ns, "wa-bridge", "acme.kommo.com", code)
	secret := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: secretName}, secret); err != nil {
		t.Fatalf("code Secret %s: %v", secretName, err)
	}
	if secret.Type != kommov1.SecretTypeAuthorizationCode {
		t.Errorf("Secret type %q", secret.Type)
	}
	if got := string(secret.Data[kommov1.AuthorizationCodeKey]); got != code || len(secret.Data) != 1 {
		t.Errorf("Secret data has keys %d, code matches %v", len(secret.Data), got == code)
	}
	if secret.Immutable == nil || !*secret.Immutable {
		t.Error("code Secret is not immutable")
	}
	wantLabels := map[string]string{kommov1.LabelManagedBy: kommov1.ManagedByValue, kommov1.LabelIntegration: "wa-bridge"}
	for k, v := range wantLabels {
		if secret.Labels[k] != v {
			t.Errorf("Secret label %s = %q, want %q", k, secret.Labels[k], v)
		}
	}
	if len(secret.OwnerReferences) != 1 {
		t.Fatalf("Secret ownerReferences: %+v", secret.OwnerReferences)
	}
	ref := secret.OwnerReferences[0]
	if ref.APIVersion != "kommo-operator.io/v1alpha1" || ref.Kind != "KommoIntegration" || ref.Name != "wa-bridge" || ref.UID != integ.UID {
		t.Errorf("Secret ownerReference %+v, want the KommoIntegration %s", ref, integ.UID)
	}
	if (ref.Controller != nil && *ref.Controller) || ref.BlockOwnerDeletion != nil {
		t.Errorf("Secret ownerReference must be neither controller nor blocking: %+v", ref)
	}

	// The installation.
	inst := getInstallation(t, ns, "wa-bridge.acme.kommo.com")
	if inst.Labels[kommov1.LabelIntegration] != "wa-bridge" {
		t.Errorf("installation labels %v", inst.Labels)
	}
	if inst.Spec.IntegrationRef.Name != "wa-bridge" || inst.Spec.AccountDomain != "acme.kommo.com" {
		t.Errorf("installation spec %+v", inst.Spec)
	}
	a := inst.Spec.Authorization
	if a == nil {
		t.Fatal("no spec.authorization")
	}
	if a.CodeSecretRef != (kommov1.SecretKeyRef{Name: secretName, Key: kommov1.AuthorizationCodeKey}) {
		t.Errorf("codeSecretRef %+v", a.CodeSecretRef)
	}
	if a.ReceivedAt.Time.Before(before) || a.ReceivedAt.Time.After(after) {
		t.Errorf("receivedAt %v outside the request's window", a.ReceivedAt)
	}
	if a.FromWidget || a.State != state {
		t.Errorf("fromWidget %v, state recorded %v", a.FromWidget, a.State == state)
	}
	if inst.Spec.Revocation != nil || inst.Spec.LongLivedTokenSecretRef != nil {
		t.Errorf("unexpected spec fields %+v", inst.Spec)
	}

	if got := requests(routeRedirect, outcomeRecorded) - recorded; got != 1 {
		t.Errorf("recorded count went up by %v, want 1", got)
	}
	assertNoLeak(t, code, state)
}

func TestInstallFromWidgetAnswersMachines(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	code := testCode("widget")
	// from_widget counts with any value, even empty; referer in capitals is lowercased.
	resp := h.do(http.MethodGet, redirectPath(ns, "bridge")+"?from_widget&code="+code+"&referer=ACME.Kommo.com", nil)
	if resp.status != http.StatusOK || resp.body != "ok\n" || !strings.HasPrefix(resp.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("got %d %q (%s), want 200 ok as text", resp.status, resp.body, resp.header.Get("Content-Type"))
	}
	inst := getInstallation(t, ns, "bridge.acme.kommo.com")
	if inst.Spec.AccountDomain != "acme.kommo.com" || !inst.Spec.Authorization.FromWidget || inst.Spec.Authorization.State != "" {
		t.Errorf("spec %+v / authorization %+v", inst.Spec, inst.Spec.Authorization)
	}
}

func TestCustomAccountDomains(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "private", "crm.example.org")
	if resp := h.get(redirectPath(ns, "private"), installQuery("acme.kommo.com", testCode("a"))); resp.status != http.StatusBadRequest {
		t.Errorf("default domain outside accountDomains: status %d, want 400", resp.status)
	}
	if secrets, insts := objects(t, ns); len(secrets)+len(insts) != 0 {
		t.Fatalf("a rejected install wrote %d Secrets and %d installations", len(secrets), len(insts))
	}
	if resp := h.get(redirectPath(ns, "private"), installQuery("acme.crm.example.org", testCode("b"))); resp.status != http.StatusOK {
		t.Fatalf("referer under accountDomains: status %d %q", resp.status, resp.body)
	}
	getInstallation(t, ns, "private.acme.crm.example.org")
}

func TestDuplicateCodeIsOneInstall(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	code := testCode("dup")
	q := installQuery("acme.kommo.com", code, "state", "s1")
	dups := requests(routeRedirect, outcomeDuplicate)

	if resp := h.get(redirectPath(ns, "bridge"), q); resp.status != http.StatusOK {
		t.Fatalf("first: %d %q", resp.status, resp.body)
	}
	first := getInstallation(t, ns, "bridge.acme.kommo.com")
	// At once, before the cache may have seen the install, and again once it surely has.
	if resp := h.get(redirectPath(ns, "bridge"), q); resp.status != http.StatusOK {
		t.Fatalf("second: %d %q", resp.status, resp.body)
	}
	h.waitCached(client.ObjectKeyFromObject(first), &kommov1.KommoInstallation{}, nil)
	if resp := h.get(redirectPath(ns, "bridge"), q, "Accept", "text/html"); resp.status != http.StatusOK {
		t.Fatalf("third: %d %q", resp.status, resp.body)
	}

	secrets, insts := objects(t, ns)
	if len(secrets) != 1 || len(insts) != 1 {
		t.Fatalf("%d Secrets and %d installations, want one each", len(secrets), len(insts))
	}
	last := &insts[0]
	if last.ResourceVersion != first.ResourceVersion || !last.Spec.Authorization.ReceivedAt.Equal(&first.Spec.Authorization.ReceivedAt) {
		t.Errorf("installation re-patched by a duplicate: receivedAt %v → %v", first.Spec.Authorization.ReceivedAt, last.Spec.Authorization.ReceivedAt)
	}
	if got := requests(routeRedirect, outcomeDuplicate) - dups; got != 2 {
		t.Errorf("duplicate count went up by %v, want 2", got)
	}
}

func TestReinstallPatchesTheSameInstallation(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	code1, code2 := testCode("first"), testCode("second")

	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", code1, "state", "from-site")); resp.status != http.StatusOK {
		t.Fatalf("install: %d %q", resp.status, resp.body)
	}
	first := getInstallation(t, ns, "bridge.acme.kommo.com")
	// The controller's part of the object, which the webhook must leave alone.
	patch := []byte(`{"metadata":{"labels":{"kommo-operator.io/account-id":"32720107"},"annotations":{"note":"kept"}}}`)
	if err := env.Client.Patch(context.Background(), first, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	// A widget reinstall: no state this time.
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", code2, "from_widget", "1")); resp.status != http.StatusOK {
		t.Fatalf("reinstall: %d %q", resp.status, resp.body)
	}
	second := getInstallation(t, ns, "bridge.acme.kommo.com")
	if second.UID != first.UID {
		t.Fatal("reinstall created a new object")
	}
	a1, a2 := first.Spec.Authorization, second.Spec.Authorization
	if a2.CodeSecretRef.Name != wantSecretName(ns, "bridge", "acme.kommo.com", code2) {
		t.Errorf("codeSecretRef %q is not the new code's Secret", a2.CodeSecretRef.Name)
	}
	if !a1.ReceivedAt.Before(&a2.ReceivedAt) {
		t.Errorf("receivedAt %v not after %v", a2.ReceivedAt, a1.ReceivedAt)
	}
	if !a2.FromWidget || a2.State != "" {
		t.Errorf("the reinstall inherited fields of the first install: %+v", a2)
	}
	if second.Labels[kommov1.LabelAccountID] != "32720107" || second.Annotations["note"] != "kept" {
		t.Errorf("the webhook touched fields it does not own: %v %v", second.Labels, second.Annotations)
	}
	secrets, _ := objects(t, ns)
	if len(secrets) != 2 {
		t.Errorf("%d Secrets, want one per code", len(secrets))
	}
	assertNoLeak(t, code1, code2)
}

func TestInstallsInTheSameInstantAreOrdered(t *testing.T) {
	frozen := time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	h := startWebhook(t, nil, testOptions(), func(s *Server) { s.now = func() time.Time { return frozen } })
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	codes := []string{testCode("one"), testCode("two"), testCode("three")}
	var stamps []metav1.MicroTime
	for _, c := range codes {
		if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", c)); resp.status != http.StatusOK {
			t.Fatalf("%d %q", resp.status, resp.body)
		}
		a := getInstallation(t, ns, "bridge.acme.kommo.com").Spec.Authorization
		if a.CodeSecretRef.Name != wantSecretName(ns, "bridge", "acme.kommo.com", c) {
			t.Fatalf("install %d did not win over the earlier one", len(stamps)+1)
		}
		stamps = append(stamps, a.ReceivedAt)
	}
	for i := 1; i < len(stamps); i++ {
		if !stamps[i-1].Before(&stamps[i]) {
			t.Errorf("receivedAt %v is not after %v", stamps[i], stamps[i-1])
		}
		if stamps[i].Unix() != frozen.Unix() {
			t.Errorf("receivedAt %v left the second", stamps[i])
		}
	}
}

// Installs are ordered by receivedAt (microseconds, unique per object): an install stamped
// before the recorded one — a write deferred through an API server outage that lands after
// a newer install — never replaces it; one stamped after does.
func TestAnOlderInstallNeverReplacesANewerOne(t *testing.T) {
	early := startWebhook(t, nil, testOptions(), clockAt(-time.Minute))
	late := startWebhook(t, nil, testOptions(), clockAt(time.Minute))
	ns := env.Namespace(t)
	late.createIntegration(ns, "bridge")
	early.waitCached(client.ObjectKey{Namespace: ns, Name: "bridge"}, &kommov1.KommoIntegration{}, nil)
	if resp := late.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("newer"))); resp.status != http.StatusOK {
		t.Fatalf("%d %q", resp.status, resp.body)
	}
	newer := getInstallation(t, ns, "bridge.acme.kommo.com")
	dups := requests(routeRedirect, outcomeDuplicate)
	if resp := early.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("older"))); resp.status != http.StatusOK {
		t.Fatalf("%d %q", resp.status, resp.body)
	}
	if d := requests(routeRedirect, outcomeDuplicate) - dups; d != 1 {
		t.Errorf("duplicate +%v, want 1", d)
	}
	if got := getInstallation(t, ns, "bridge.acme.kommo.com"); got.ResourceVersion != newer.ResourceVersion {
		t.Fatalf("an older install replaced a newer one: codeSecretRef %s", got.Spec.Authorization.CodeSecretRef.Name)
	}
	// A later install replaces it.
	recorded := requests(routeRedirect, outcomeRecorded)
	cached := &kommov1.KommoInstallation{}
	late.waitCached(client.ObjectKeyFromObject(newer), cached, func() bool { return cached.ResourceVersion == newer.ResourceVersion })
	if resp := late.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("newest"))); resp.status != http.StatusOK {
		t.Fatalf("%d %q", resp.status, resp.body)
	}
	if d := requests(routeRedirect, outcomeRecorded) - recorded; d != 1 {
		t.Errorf("recorded +%v, want 1", d)
	}
	if got := getInstallation(t, ns, "bridge.acme.kommo.com").Spec.Authorization.CodeSecretRef.Name; got != wantSecretName(ns, "bridge", "acme.kommo.com", testCode("newest")) {
		t.Errorf("the newest install was not recorded: codeSecretRef %s", got)
	}
}

// Two replicas can stamp the same microsecond. The controller identifies an install by
// its receivedAt: a new install must never carry the receivedAt of one it processed.
func TestReceivedAtStaysDistinctAcrossReplicas(t *testing.T) {
	frozen := time.Now().UTC().Truncate(time.Microsecond)
	stopped := func(s *Server) { s.now = func() time.Time { return frozen } }
	a := startWebhook(t, nil, testOptions(), stopped)
	b := startWebhook(t, nil, testOptions(), stopped)
	ns := env.Namespace(t)
	a.createIntegration(ns, "bridge")
	b.waitCached(client.ObjectKey{Namespace: ns, Name: "bridge"}, &kommov1.KommoIntegration{}, nil)
	if resp := a.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("one"))); resp.status != http.StatusOK {
		t.Fatalf("%d %q", resp.status, resp.body)
	}
	// The controller processes it (its attempt failed: a failed attempt counts as processed too).
	inst := getInstallation(t, ns, "bridge.acme.kommo.com")
	done := inst.Spec.Authorization.ReceivedAt
	inst.Status.LastAttempt = &kommov1.Outcome{ReceivedAt: done, Result: kommov1.OutcomeFailed, Reason: "InvalidCode", Time: metav1.Now()}
	if err := env.Client.Status().Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	if resp := b.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("two"))); resp.status != http.StatusOK {
		t.Fatalf("%d %q", resp.status, resp.body)
	}
	a2 := getInstallation(t, ns, "bridge.acme.kommo.com").Spec.Authorization
	if a2.CodeSecretRef.Name != wantSecretName(ns, "bridge", "acme.kommo.com", testCode("two")) {
		t.Fatalf("the second install was not recorded: %s", a2.CodeSecretRef.Name)
	}
	if a2.ReceivedAt.Equal(&done) {
		t.Errorf("the new install carries the processed install's receivedAt %v", done)
	}
	if a2.ReceivedAt.Sub(done.Time) > time.Millisecond {
		t.Errorf("receivedAt moved %v from the instant it was received", a2.ReceivedAt.Sub(done.Time))
	}
}

func TestRejectionsWriteNothing(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	h.createIntegration(ns, "private", "crm.example.org")
	good := testCode("good")
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return "?" + v.Encode()
	}
	path := redirectPath(ns, "bridge")
	cases := []struct {
		name    string
		method  string
		target  string
		body    string
		status  int
		outcome string
	}{
		{"look-alike suffix", "GET", path + q("referer", "acme.kommo.com.evil.io", "code", good), "", 400, outcomeRejected},
		{"look-alike domain", "GET", path + q("referer", "evilkommo.com", "code", good), "", 400, outcomeRejected},
		{"scheme", "GET", path + q("referer", "https://acme.kommo.com", "code", good), "", 400, outcomeRejected},
		{"port", "GET", path + q("referer", "acme.kommo.com:443", "code", good), "", 400, outcomeRejected},
		{"path", "GET", path + q("referer", "acme.kommo.com/x", "code", good), "", 400, outcomeRejected},
		{"userinfo", "GET", path + q("referer", "me@acme.kommo.com", "code", good), "", 400, outcomeRejected},
		{"bare suffix", "GET", path + q("referer", "kommo.com", "code", good), "", 400, outcomeRejected},
		{"nested subdomain", "GET", path + q("referer", "a.b.kommo.com", "code", good), "", 400, outcomeRejected},
		{"ip literal", "GET", path + q("referer", "127.0.0.1", "code", good), "", 400, outcomeRejected},
		{"missing referer", "GET", path + q("code", good), "", 400, outcomeRejected},
		{"outside custom domains", "GET", redirectPath(ns, "private") + q("referer", "acme.kommo.com", "code", good), "", 400, outcomeRejected},
		{"missing code", "GET", path + q("referer", "acme.kommo.com"), "", 400, outcomeRejected},
		{"empty code", "GET", path + q("referer", "acme.kommo.com", "code", ""), "", 400, outcomeRejected},
		{"oversized code", "GET", path + q("referer", "acme.kommo.com", "code", strings.Repeat("a", maxCodeBytes+1)), "", 400, outcomeRejected},
		{"code with space", "GET", path + q("referer", "acme.kommo.com", "code", "def 502"), "", 400, outcomeRejected},
		{"code with NUL", "GET", path + q("referer", "acme.kommo.com", "code", "def\x00502"), "", 400, outcomeRejected},
		{"code not ASCII", "GET", path + q("referer", "acme.kommo.com", "code", "défense"), "", 400, outcomeRejected},
		{"two codes", "GET", path + q("referer", "acme.kommo.com", "code", good, "code", testCode("other")), "", 400, outcomeRejected},
		{"two referers", "GET", path + q("referer", "acme.kommo.com", "referer", "evil.kommo.com", "code", good), "", 400, outcomeRejected},
		{"bad escape", "GET", path + "?referer=acme.kommo.com&code=%zz", "", 400, outcomeRejected},
		{"oversized state", "GET", path + q("referer", "acme.kommo.com", "code", good, "state", strings.Repeat("s", maxStateBytes+1)), "", 400, outcomeRejected},
		{"state with newline", "GET", path + q("referer", "acme.kommo.com", "code", good, "state", "a\nb"), "", 400, outcomeRejected},
		{"oversized query", "GET", path + q("referer", "acme.kommo.com", "code", good, "pad", strings.Repeat("p", maxQueryBytes)), "", 414, outcomeRejected},
		{"unknown integration", "GET", redirectPath(ns, "nope") + q("referer", "acme.kommo.com", "code", good), "", 404, outcomeUnknownIntegration},
		{"unknown namespace", "GET", redirectPath("no-such-ns", "bridge") + q("referer", "acme.kommo.com", "code", good), "", 404, outcomeUnknownIntegration},
		{"invalid integration name", "GET", redirectPath(ns, "Bridge") + q("referer", "acme.kommo.com", "code", good), "", 404, outcomeUnknownIntegration},
		{"POST with body", "POST", path + q("referer", "acme.kommo.com", "code", good), "code=" + good, 405, outcomeRejected},
		{"POST without body", "POST", path + q("referer", "acme.kommo.com", "code", good), "", 405, outcomeRejected},
		{"GET with body", "GET", path + q("referer", "acme.kommo.com"), "code=" + good, 413, outcomeRejected},
		{"access denied", "GET", path + q("error", "access_denied", "state", "s", "client_id", testClientID), "", 200, outcomeDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := requests(routeRedirect, tc.outcome)
			var body *strings.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			var resp response
			if body != nil {
				resp = h.do(tc.method, tc.target, body, "Accept", "text/html")
			} else {
				resp = h.do(tc.method, tc.target, nil, "Accept", "text/html")
			}
			if resp.status != tc.status {
				t.Errorf("status %d, want %d (%q)", resp.status, tc.status, resp.body)
			}
			if got := requests(routeRedirect, tc.outcome) - before; got != 1 {
				t.Errorf("outcome %q counted %v times, want 1", tc.outcome, got)
			}
			if strings.Contains(resp.body, good[:16]) || strings.Contains(resp.body, "acme.kommo.com") {
				t.Error("the answer echoes the query")
			}
			if tc.outcome == outcomeDenied && !strings.Contains(resp.body, "Installation cancelled") {
				t.Errorf("access_denied page: %q", resp.body)
			}
			if secrets, insts := objects(t, ns); len(secrets)+len(insts) != 0 {
				t.Fatalf("wrote %d Secrets and %d installations", len(secrets), len(insts))
			}
		})
	}
	// The same checks see a write when there is one.
	if resp := h.get(path, installQuery("acme.kommo.com", good)); resp.status != http.StatusOK {
		t.Fatalf("valid install after the rejections: %d %q", resp.status, resp.body)
	}
	if secrets, insts := objects(t, ns); len(secrets) != 1 || len(insts) != 1 {
		t.Errorf("valid install wrote %d Secrets and %d installations", len(secrets), len(insts))
	}
	assertNoLeak(t, good)
}

func TestPendingCap(t *testing.T) {
	opts := testOptions()
	opts.MaxPendingInstallations = 2
	h := startWebhook(t, nil, opts, nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	for _, acct := range []string{"one", "two"} {
		if resp := h.get(redirectPath(ns, "bridge"), installQuery(acct+".kommo.com", testCode(acct))); resp.status != http.StatusOK {
			t.Fatalf("%s: %d %q", acct, resp.status, resp.body)
		}
	}
	waitPending := func(want int) {
		eventually(t, 10*time.Second, "the cache to see the pending installs", func() bool {
			list := &kommov1.KommoInstallationList{}
			if err := h.mgr.GetCache().List(context.Background(), list, client.InNamespace(ns)); err != nil {
				return false
			}
			n := 0
			for i := range list.Items {
				if isPending(&list.Items[i], time.Now(), opts.CodeLifetime) {
					n++
				}
			}
			counted := h.srv.pending.count(client.ObjectKey{Namespace: ns, Name: "bridge"}, "", time.Now())
			return n == want && counted == want
		})
	}
	waitPending(2)

	capped := requests(routeRedirect, outcomePendingCap)
	resp := h.get(redirectPath(ns, "bridge"), installQuery("three.kommo.com", testCode("three")))
	if resp.status != http.StatusServiceUnavailable {
		t.Fatalf("third account: %d %q, want 503", resp.status, resp.body)
	}
	if got := requests(routeRedirect, outcomePendingCap) - capped; got != 1 {
		t.Errorf("pending_cap counted %v times", got)
	}
	if _, insts := objects(t, ns); len(insts) != 2 {
		t.Errorf("%d installations, want 2", len(insts))
	}
	secretName := wantSecretName(ns, "bridge", "three.kommo.com", testCode("three"))
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: secretName}, &corev1.Secret{}); err == nil {
		t.Error("a capped install created its Secret")
	}
	// A reinstall of a pending account is not a new pending install.
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("two.kommo.com", testCode("two-again"))); resp.status != http.StatusOK {
		t.Errorf("reinstall of a pending account: %d %q", resp.status, resp.body)
	}

	// The controller processes one install: room for another.
	one := getInstallation(t, ns, "bridge.one.kommo.com")
	one.Status.InstalledAt = &one.Spec.Authorization.ReceivedAt
	if err := env.Client.Status().Update(context.Background(), one); err != nil {
		t.Fatal(err)
	}
	waitPending(1)
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("three.kommo.com", testCode("three"))); resp.status != http.StatusOK {
		t.Errorf("after one was processed: %d %q", resp.status, resp.body)
	}
}

// An install for an installation that is being deleted is not patched onto it (it would
// go with it, unprocessed): the webhook waits until the object is gone and creates it anew.
func TestInstallWaitsOutADeletion(t *testing.T) {
	ctx := context.Background()
	h := startWebhook(t, nil, deferredOpts(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("old"))); resp.status != http.StatusOK {
		t.Fatalf("%d %q", resp.status, resp.body)
	}
	old := getInstallation(t, ns, "bridge.acme.kommo.com")
	const hold = "kommo-operator.io/test-hold"
	old.Finalizers = append(old.Finalizers, hold)
	if err := env.Client.Update(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	cached := &kommov1.KommoInstallation{}
	h.waitCached(client.ObjectKeyFromObject(old), cached, func() bool { return cached.DeletionTimestamp != nil })

	resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("new")))
	if resp.status != http.StatusOK && resp.status != http.StatusAccepted {
		t.Fatalf("install during the deletion: %d %q", resp.status, resp.body)
	}
	deleting := getInstallation(t, ns, old.Name)
	if deleting.Spec.Authorization.CodeSecretRef.Name != old.Spec.Authorization.CodeSecretRef.Name {
		t.Fatal("the install was recorded onto the installation being deleted")
	}
	// The deletion completes: the install lands on a new object.
	deleting.Finalizers = nil
	if err := env.Client.Update(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	want := wantSecretName(ns, "bridge", "acme.kommo.com", testCode("new"))
	eventually(t, 20*time.Second, "the install to be recorded on a new installation", func() bool {
		got := &kommov1.KommoInstallation{}
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(old), got)
		return err == nil && got.UID != old.UID && got.Spec.Authorization.CodeSecretRef.Name == want
	})
}

// processed marks the installation's current install as dealt with by the controller.
func processed(t *testing.T, ns, name, result string) {
	t.Helper()
	inst := getInstallation(t, ns, name)
	at := inst.Spec.Authorization.ReceivedAt
	inst.Status.LastAttempt = &kommov1.Outcome{ReceivedAt: at, Result: result, Time: metav1.Now()}
	if result == kommov1.OutcomeSucceeded {
		inst.Status.InstalledAt = &at
	}
	if err := env.Client.Status().Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
}

// pendingCounted is what the server counts as pending for the integration.
func (h *harness) pendingCounted(ns, integ string) []string {
	p := h.srv.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	for name := range p.byIntegration[client.ObjectKey{Namespace: ns, Name: integ}] {
		names = append(names, name)
	}
	return names
}

// A failed attempt is processed: it frees its place under the cap like a successful one.
// The cap counts only the installs waiting for the controller.
func TestFailedAttemptsAreNotPending(t *testing.T) {
	opts := testOptions()
	opts.MaxPendingInstallations = 2
	h := startWebhook(t, nil, opts, nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	for _, acct := range []string{"one", "two"} {
		if resp := h.get(redirectPath(ns, "bridge"), installQuery(acct+".kommo.com", testCode(acct))); resp.status != http.StatusOK {
			t.Fatalf("%s: %d %q", acct, resp.status, resp.body)
		}
	}
	eventually(t, 10*time.Second, "the count to hold both", func() bool { return len(h.pendingCounted(ns, "bridge")) == 2 })
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("three.kommo.com", testCode("three"))); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("over the cap: %d %q", resp.status, resp.body)
	}
	processed(t, ns, "bridge.one.kommo.com", kommov1.OutcomeFailed)
	eventually(t, 10*time.Second, "the count to drop the failed attempt", func() bool {
		names := h.pendingCounted(ns, "bridge")
		return len(names) == 1 && names[0] == "bridge.two.kommo.com"
	})
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("three.kommo.com", testCode("three"))); resp.status != http.StatusOK {
		t.Fatalf("after a failed attempt: %d %q, want room for another install", resp.status, resp.body)
	}
	// A reinstall onto the failed installation is pending again.
	eventually(t, 10*time.Second, "the count to hold the third", func() bool { return len(h.pendingCounted(ns, "bridge")) == 2 })
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("one.kommo.com", testCode("one-again"))); resp.status != http.StatusServiceUnavailable {
		t.Errorf("reinstall over the cap: %d %q", resp.status, resp.body)
	}
	processed(t, ns, "bridge.two.kommo.com", kommov1.OutcomeSucceeded)
	eventually(t, 10*time.Second, "the count to drop the grant", func() bool {
		names := h.pendingCounted(ns, "bridge")
		return len(names) == 1 && names[0] == "bridge.three.kommo.com"
	})
}

// One client IP holds at most its share of the cap; installs that became a grant give
// their place back.
func TestOneClientCannotFillThePendingCap(t *testing.T) {
	opts := testOptions()
	opts.MaxPendingInstallations = 5
	opts.MaxPendingPerClient = 2
	opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	h := startWebhook(t, nil, opts, nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	send := func(from, acct, code string) int {
		t.Helper()
		return h.get(redirectPath(ns, "bridge"), installQuery(acct+".kommo.com", testCode(code)), "X-Forwarded-For", from).status
	}
	const attacker, kommo = "203.0.113.7", "198.51.100.1"
	for _, acct := range []string{"a1", "a2"} {
		if got := send(attacker, acct, acct); got != http.StatusOK {
			t.Fatalf("%s: %d", acct, got)
		}
	}
	if got := send(attacker, "a3", "a3"); got != http.StatusServiceUnavailable {
		t.Errorf("a client over its share: %d, want 503", got)
	}
	// The same account again does not take a second place.
	if got := send(attacker, "a1", "a1-again"); got != http.StatusOK {
		t.Errorf("a reinstall within the share: %d", got)
	}
	// Another client still gets in, although the attacker's installs are all pending.
	for _, acct := range []string{"k1", "k2"} {
		if got := send(kommo, acct, acct); got != http.StatusOK {
			t.Fatalf("another client's install %s: %d", acct, got)
		}
	}
	// A grant gives its place back; a failed attempt does not.
	eventually(t, 10*time.Second, "the cache to see the installs", func() bool { return len(h.pendingCounted(ns, "bridge")) == 4 })
	processed(t, ns, "bridge.k1.kommo.com", kommov1.OutcomeSucceeded)
	processed(t, ns, "bridge.a2.kommo.com", kommov1.OutcomeFailed)
	eventually(t, 10*time.Second, "the cache to see the outcomes", func() bool { return len(h.pendingCounted(ns, "bridge")) == 2 })
	if got := send(attacker, "a3", "a3"); got != http.StatusServiceUnavailable {
		t.Errorf("a failed attempt gave its client's place back: %d", got)
	}
	if got := send(kommo, "k3", "k3"); got != http.StatusOK {
		t.Errorf("a grant did not give its client's place back: %d", got)
	}
}
