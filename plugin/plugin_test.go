package plugin

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

const testClientID = "01d01160-d7a0-4087-b4af-6a1bb83fcd1d"

func createIntegration(t *testing.T, ns string, stateRef *kommov1.SecretKeyRef) *kommov1.KommoIntegration {
	t.Helper()
	integ := &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge", Namespace: ns},
		Spec: kommov1.KommoIntegrationSpec{ClientID: testClientID,
			ClientSecretRef: kommov1.SecretKeyRef{Name: "wa-bridge-kommo", Key: "client_secret"},
			RedirectURI:     "https://hooks.example.com/kommo/" + ns + "/wa-bridge/redirect",
			StateSecretRef:  stateRef},
	}
	if err := env.Client.Create(context.Background(), integ); err != nil {
		t.Fatal(err)
	}
	return integ
}

func createInstallation(t *testing.T, ns string) *kommov1.KommoInstallation {
	t.Helper()
	inst := &kommov1.KommoInstallation{
		ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge.acme.kommo.com", Namespace: ns},
		Spec: kommov1.KommoInstallationSpec{IntegrationRef: kommov1.LocalObjectReference{Name: "wa-bridge"}, AccountDomain: "acme.kommo.com",
			Authorization: &kommov1.Authorization{CodeSecretRef: kommov1.SecretKeyRef{Name: "kommo-code-1", Key: "code"},
				ReceivedAt: metav1.NewMicroTime(testNow.Add(-time.Hour))}},
	}
	if err := env.Client.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

func get(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
}

func TestRefresh(t *testing.T) {
	ns := env.Namespace(t)
	inst := createInstallation(t, ns)
	out, err := run(t, "-n", ns, "refresh", inst.Name)
	if err != nil {
		t.Fatal(err)
	}
	get(t, inst)
	if got := inst.Annotations[kommov1.AnnotationRefreshRequestedAt]; got != "2026-12-01T20:00:00Z" {
		t.Errorf("annotation %q, want the time of the command in RFC 3339 (output %q)", got, out)
	}
	if _, err := run(t, "-n", ns, "refresh", "wa-bridge.missing.kommo.com"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("refresh of a missing installation: %v", err)
	}
}

func TestPauseResume(t *testing.T) {
	ns := env.Namespace(t)
	inst := createInstallation(t, ns)
	integ := createIntegration(t, ns, nil)
	if _, err := run(t, "-n", ns, "pause", inst.Name); err != nil {
		t.Fatal(err)
	}
	get(t, inst)
	if inst.Annotations[kommov1.AnnotationPaused] != "true" {
		t.Errorf("after pause: annotations %v", inst.Annotations)
	}
	if _, err := run(t, "-n", ns, "resume", inst.Name); err != nil {
		t.Fatal(err)
	}
	get(t, inst)
	if _, ok := inst.Annotations[kommov1.AnnotationPaused]; ok {
		t.Errorf("after resume: annotations %v", inst.Annotations)
	}
	if _, err := run(t, "-n", ns, "pause", "--integration", integ.Name); err != nil {
		t.Fatal(err)
	}
	get(t, integ)
	if integ.Annotations[kommov1.AnnotationPaused] != "true" {
		t.Errorf("after pause --integration: annotations %v", integ.Annotations)
	}
}

func TestConsentURL(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	key := []byte("a-state-key-of-the-site")
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge-site", Namespace: ns},
		Data: map[string][]byte{"state_key": key}}); err != nil {
		t.Fatal(err)
	}
	createIntegration(t, ns, &kommov1.SecretKeyRef{Name: "wa-bridge-site", Key: "state_key"})
	out, err := run(t, "-n", ns, "consent-url", "wa-bridge", "--ttl", "10m")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "https" || u.Host != "www.kommo.com" || u.Path != "/oauth" || q.Get("client_id") != testClientID || q.Get("mode") != "post_message" {
		t.Errorf("consent URL %s", u)
	}
	state := q.Get("state")
	if err := kommo.VerifyState(key, state, testNow.Add(9*time.Minute)); err != nil {
		t.Errorf("the state does not verify with the integration's key: %v", err)
	}
	if err := kommo.VerifyState(key, state, testNow.Add(10*time.Minute)); err != kommo.ErrStateExpired {
		t.Errorf("the state is still valid after --ttl: %v", err)
	}
	if err := kommo.VerifyState([]byte("another key"), state, testNow); err != kommo.ErrStateSignature {
		t.Errorf("the state verifies with another key: %v", err)
	}
	if strings.Contains(out, string(key)) {
		t.Error("the output contains the state key")
	}
	again, _ := run(t, "-n", ns, "consent-url", "wa-bridge")
	if again == out {
		t.Error("two links carry the same state: the nonce is not random")
	}

	// Without stateSecretRef, or with its key missing: a clear error.
	ns2 := env.Namespace(t)
	createIntegration(t, ns2, nil)
	if _, err := run(t, "-n", ns2, "consent-url", "wa-bridge"); err == nil || !strings.Contains(err.Error(), "no spec.stateSecretRef") {
		t.Errorf("without stateSecretRef: %v", err)
	}
	ns3 := env.Namespace(t)
	createIntegration(t, ns3, &kommov1.SecretKeyRef{Name: "absent", Key: "state_key"})
	if _, err := run(t, "-n", ns3, "consent-url", "wa-bridge"); err == nil || !strings.Contains(err.Error(), "reading the state key") {
		t.Errorf("with a missing Secret: %v", err)
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	inst := createInstallation(t, ns)
	t0 := metav1.NewTime(testNow.Add(-30 * time.Minute))
	inst.Status = kommov1.KommoInstallationStatus{
		ObservedGeneration:   inst.Generation,
		AccountDomain:        "acme-renamed.kommo.com",
		AccountID:            32720107,
		ScopeID:              "344a5002_52e591f7",
		TokenSecretName:      inst.Name + "-token",
		AccessTokenExpiresAt: ptr.To(metav1.NewTime(testNow.Add(3 * time.Hour))),
		RefreshTime:          ptr.To(metav1.NewTime(testNow.Add(-time.Hour))),
		LastAttempt:          &kommov1.Outcome{ReceivedAt: inst.Spec.Authorization.ReceivedAt, Result: kommov1.OutcomeFailed, Reason: kommov1.ReasonInvalidCode, Time: t0},
		LastRevocation:       &kommov1.Outcome{ReceivedAt: metav1.NewMicroTime(testNow.Add(-2 * time.Hour)), Result: kommov1.OutcomeIgnored, Reason: kommov1.ReasonNotConfirmed, Time: t0},
		Backoffs:             []kommov1.Backoff{{Concern: "Tokens", FailedAttempts: 4, LastFailureTime: t0}},
		Conditions: []metav1.Condition{
			{Type: kommov1.ConditionAuthorized, Status: metav1.ConditionTrue, Reason: kommov1.ReasonRefreshFailing, Message: "Kommo answered 503", LastTransitionTime: t0},
			{Type: kommov1.ConditionInstalled, Status: metav1.ConditionFalse, Reason: kommov1.ReasonInvalidCode, Message: "Kommo rejected the code", LastTransitionTime: t0},
			{Type: kommov1.ConditionChannelConnected, Status: metav1.ConditionFalse, Reason: kommov1.ReasonInvalidSignature, Message: "the Chats API rejected the signature", LastTransitionTime: t0},
			{Type: kommov1.ConditionReady, Status: metav1.ConditionFalse, Reason: kommov1.ReasonInvalidSignature, Message: "channel not connected", LastTransitionTime: t0},
		},
	}
	if err := env.Client.Status().Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	event := func(name string, regarding client.Object, reason string, at time.Time) {
		t.Helper()
		e := &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			EventTime:  metav1.NewMicroTime(at), ReportingController: "kommo-operator.io/controller", ReportingInstance: "controller-a",
			Action: "Reconcile", Reason: reason, Type: corev1.EventTypeWarning, Note: reason + " happened",
			Regarding: corev1.ObjectReference{APIVersion: kommov1.GroupVersion.String(), Kind: regarding.GetObjectKind().GroupVersionKind().Kind,
				Namespace: ns, Name: regarding.GetName(), UID: regarding.GetUID()},
		}
		if err := env.Client.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	event("e1", inst, "InvalidCode", testNow.Add(-20*time.Minute))
	event("e2", inst, "ChannelRejected", testNow.Add(-10*time.Minute))
	other := createIntegration(t, ns, nil)
	event("e3", other, "SomethingElse", testNow.Add(-5*time.Minute))

	out, err := run(t, "-n", ns, "status", inst.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Installation:", ns + "/" + inst.Name,
		"acme-renamed.kommo.com", "32720107", "344a5002_52e591f7", inst.Name + "-token",
		"2026-12-01T23:00:00Z (in 3h)", "2026-12-01T19:00:00Z (60m ago)",
		"Failed (InvalidCode)", "Ignored (NotConfirmed)",
		"Tokens", "4",
		"Installed", "Kommo rejected the code",
		"InvalidCode happened", "ChannelRejected happened",
		"What to do:", "ChannelConnected InvalidSignature: " + advice[kommov1.ReasonInvalidSignature],
		"Installed InvalidCode: " + advice[kommov1.ReasonInvalidCode],
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SomethingElse") {
		t.Errorf("status shows another object's event:\n%s", out)
	}
	if strings.Index(out, "InvalidCode happened") > strings.Index(out, "ChannelRejected happened") {
		t.Errorf("events are not oldest first:\n%s", out)
	}
	if strings.Contains(out, "Authorized RefreshFailing") {
		t.Errorf("advice for a True condition:\n%s", out)
	}

	for _, format := range []string{"json", "yaml"} {
		data, err := run(t, "-n", ns, "status", inst.Name, "-o", format)
		if err != nil {
			t.Fatal(err)
		}
		var r statusReport
		if format == "json" {
			err = json.Unmarshal([]byte(data), &r)
		} else {
			err = yaml.UnmarshalStrict([]byte(data), &r)
		}
		if err != nil {
			t.Fatalf("-o %s: %v\n%s", format, err, data)
		}
		if r.Name != inst.Name || r.ScopeID != "344a5002_52e591f7" || len(r.Conditions) != 4 || len(r.Events) != 2 || len(r.Actions) != 2 ||
			r.LastAttempt == nil || r.LastAttempt.Reason != kommov1.ReasonInvalidCode || len(r.Backoffs) != 1 {
			t.Errorf("-o %s: %+v", format, r)
		}
	}
	if _, err := run(t, "-n", ns, "status", inst.Name, "-o", "wide"); err == nil {
		t.Error("-o wide was accepted")
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	args := []string{"check", "--operator-namespace", ns}
	out, err := run(t, args...)
	if err == nil {
		t.Fatalf("check passed without a controller or webhook:\n%s", out)
	}
	for _, want := range []string{"OK    CRDs served", "FAIL  controller leader", "FAIL  webhook ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("check lacks %q:\n%s", want, out)
		}
	}

	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaderElectionID, Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("controller-a_1234"), LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime: ptr.To(metav1.NewMicroTime(testNow.Add(-20 * time.Second)))}}
	if err := env.Client.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "webhook"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "kommo-operator-webhook", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "webhook", Image: "kommo-operator"}}}}}}
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, ReadyReplicas: 1, AvailableReplicas: 1}
	if err := env.Client.Status().Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, args...)
	if err == nil || !strings.Contains(out, "FAIL  controller leader") || !strings.Contains(out, "expired") || !strings.Contains(out, "1/2 replicas ready") {
		t.Errorf("an expired Lease and a half-ready webhook pass (err %v):\n%s", err, out)
	}

	lease.Spec.RenewTime = ptr.To(metav1.NewMicroTime(testNow.Add(-5 * time.Second)))
	if err := env.Client.Update(ctx, lease); err != nil {
		t.Fatal(err)
	}
	d.Status.ReadyReplicas, d.Status.AvailableReplicas = 2, 2
	if err := env.Client.Status().Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, args...)
	if err != nil || strings.Contains(out, "FAIL") || !strings.Contains(out, "controller-a_1234") {
		t.Errorf("a healthy operator fails the check (err %v):\n%s", err, out)
	}
	data, err := run(t, append(args, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var results []checkResult
	if err := json.Unmarshal([]byte(data), &results); err != nil || len(results) != 3 {
		t.Fatalf("-o json: %v\n%s", err, data)
	}
	for _, r := range results {
		if !r.OK {
			t.Errorf("-o json: %+v", r)
		}
	}
}
