package upgrade_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
	"github.com/kommo-operator/kommo-operator/test/upgrade/fixture"
)

// microLayout is how metav1.MicroTime is written.
const microLayout = "2006-01-02T15:04:05.000000Z07:00"

// loaded is one case as the test recreated it.
type loaded struct {
	name      string
	ns        string
	installed *unstructured.Unstructured // the KommoInstallation as captured, times moved
	uid       types.UID
	longLived bool
}

// shift moves every timestamp of a captured KommoInstallation (spec and status, the
// refresh-requested-at annotation) by d, keeping each one's precision. A long-lived token's
// expiry stays: it is written in the token itself.
func shiftInstallation(obj *unstructured.Unstructured, d time.Duration, longLived bool) {
	for _, field := range []string{"spec", "status"} {
		if v, ok := obj.Object[field]; ok {
			obj.Object[field] = shiftValue(v, d)
		}
	}
	if longLived {
		// Undo the one time that is not the world's clock but the token's own claim.
		orig, _, _ := unstructured.NestedString(obj.Object, "status", "accessTokenExpiresAt")
		if t, err := time.Parse(time.RFC3339, orig); err == nil {
			_ = unstructured.SetNestedField(obj.Object, t.Add(-d).UTC().Format(time.RFC3339), "status", "accessTokenExpiresAt")
		}
	}
	ann := obj.GetAnnotations()
	if at, ok := ann[kommov1.AnnotationRefreshRequestedAt]; ok {
		ann[kommov1.AnnotationRefreshRequestedAt] = shiftString(at, d)
		obj.SetAnnotations(ann)
	}
}

func shiftValue(v any, d time.Duration) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = shiftValue(e, d)
		}
	case []any:
		for i, e := range x {
			x[i] = shiftValue(e, d)
		}
	case string:
		return shiftString(x, d)
	}
	return v
}

// shiftString moves an RFC 3339 time by d in the layout it was written in; any other
// string is returned as it is.
func shiftString(s string, d time.Duration) string {
	if len(s) < 20 || s[4] != '-' || s[10] != 'T' {
		return s
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	layout := time.RFC3339
	if strings.Contains(s, ".") {
		layout = microLayout
	}
	return t.Add(d).UTC().Format(layout)
}

// shiftTokenSecret moves the token Secret's expires_at and the authorization it records.
func shiftTokenSecret(obj *unstructured.Unstructured, d time.Duration, longLived bool) {
	if !longLived {
		if enc, ok, _ := unstructured.NestedString(obj.Object, "data", kommov1.TokenKeyExpiresAt); ok {
			raw, _ := base64.StdEncoding.DecodeString(enc)
			shifted := shiftString(string(raw), d)
			_ = unstructured.SetNestedField(obj.Object, base64.StdEncoding.EncodeToString([]byte(shifted)), "data", kommov1.TokenKeyExpiresAt)
		}
	}
	ann := obj.GetAnnotations()
	if at, ok := ann["kommo-operator.io/authorization"]; ok {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err == nil {
			ann["kommo-operator.io/authorization"] = t.Add(d).UTC().Format(time.RFC3339Nano)
			obj.SetAnnotations(ann)
		}
	}
}

// shiftKommo moves the expiry of the codes and token pairs of one account host by d; a
// long-lived token's expiry is its JWT's and stays.
func shiftKommo(st *kommotest.State, host string, d time.Duration) {
	for i := range st.Codes {
		if st.Codes[i].Account == host {
			st.Codes[i].ExpiresAt = st.Codes[i].ExpiresAt.Add(d)
		}
	}
	for i := range st.Grants {
		g := &st.Grants[i]
		if g.Account != host || g.RefreshToken == "" {
			continue
		}
		g.AccessExpiresAt = g.AccessExpiresAt.Add(d)
		g.RefreshExpiresAt = g.RefreshExpiresAt.Add(d)
	}
}

// load recreates one case's objects in a new namespace: Secrets, the KommoIntegration
// and the KommoInstallation at their captured generation, status through the status
// subresource, ownerReferences pointed at the new objects' UIDs.
func load(t *testing.T, ctx context.Context, name string, objects []*unstructured.Unstructured, d time.Duration) *loaded {
	t.Helper()
	l := &loaded{name: name, ns: env.Namespace(t)}
	var integration, installation *unstructured.Unstructured
	var owned, plain []*unstructured.Unstructured
	for _, o := range objects {
		o = o.DeepCopy()
		o.SetNamespace(l.ns)
		switch {
		case o.GetKind() == "KommoIntegration":
			integration = o
		case o.GetKind() == "KommoInstallation":
			installation = o
		case len(o.GetOwnerReferences()) > 0:
			owned = append(owned, o)
		default:
			plain = append(plain, o)
		}
	}
	if integration == nil || installation == nil {
		t.Fatalf("case %s: the fixture lacks its KommoIntegration or KommoInstallation", name)
	}
	_, l.longLived, _ = unstructured.NestedMap(installation.Object, "spec", "longLivedTokenSecretRef")
	shiftInstallation(installation, d, l.longLived)
	l.installed = installation.DeepCopy()

	for _, o := range plain {
		create(t, ctx, o)
	}
	uids := map[string]types.UID{}
	uids["KommoIntegration/"+integration.GetName()] = createAtGeneration(t, ctx, integration)
	l.uid = createAtGeneration(t, ctx, installation)
	uids["KommoInstallation/"+installation.GetName()] = l.uid
	for _, o := range owned {
		refs := o.GetOwnerReferences()
		for i := range refs {
			uid, ok := uids[refs[i].Kind+"/"+refs[i].Name]
			if !ok {
				t.Fatalf("case %s: %s is owned by %s %s, which the fixture lacks", name, o.GetName(), refs[i].Kind, refs[i].Name)
			}
			refs[i].UID = uid
		}
		o.SetOwnerReferences(refs)
		if o.GetAnnotations()["kommo-operator.io/authorization"] != "" || o.Object["type"] == string(kommov1.SecretTypeToken) {
			shiftTokenSecret(o, d, l.longLived)
		}
		create(t, ctx, o)
	}
	return l
}

func create(t *testing.T, ctx context.Context, o *unstructured.Unstructured) {
	t.Helper()
	if err := env.Client.Create(ctx, o); err != nil {
		t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

// createAtGeneration creates o so that its metadata.generation is the captured one (the
// conditions' observedGeneration refer to it): spec updates in between, the last one back
// to the captured spec. Its captured status is then written through the status
// subresource, as the release's controller wrote it.
func createAtGeneration(t *testing.T, ctx context.Context, captured *unstructured.Unstructured) types.UID {
	t.Helper()
	generation := captured.GetGeneration()
	if generation < 1 {
		t.Fatalf("%s %s: the fixture records no generation", captured.GetKind(), captured.GetName())
	}
	status, hasStatus := captured.Object["status"]
	spec := captured.Object["spec"]
	o := captured.DeepCopy()
	delete(o.Object, "status")
	unstructured.RemoveNestedField(o.Object, "metadata", "generation")
	if generation > 1 {
		o.Object["spec"] = perturbed(spec, 0)
	}
	create(t, ctx, o)
	for i := int64(1); i <= generation-2; i++ {
		o.Object["spec"] = perturbed(spec, i)
		update(t, ctx, o)
	}
	if generation > 1 {
		o.Object["spec"] = runtimeCopy(spec)
		update(t, ctx, o)
	}
	if o.GetGeneration() != generation {
		t.Fatalf("%s %s at generation %d, captured at %d", o.GetKind(), o.GetName(), o.GetGeneration(), generation)
	}
	if hasStatus {
		o.Object["status"] = runtimeCopy(status)
		if err := env.Client.Status().Update(ctx, o); err != nil {
			t.Fatalf("writing the status of %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	return o.GetUID()
}

func update(t *testing.T, ctx context.Context, o *unstructured.Unstructured) {
	t.Helper()
	if err := env.Client.Update(ctx, o); err != nil {
		t.Fatalf("updating %s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

// perturbed is spec with a placeholder revocation that differs from the previous i's;
// the controller is not running yet, so nobody acts on it.
func perturbed(spec any, i int64) any {
	s := runtimeCopy(spec).(map[string]any)
	if _, ok := s["clientID"]; ok { // a KommoIntegration
		s["redirectURI"] = fmt.Sprintf("https://perturbed.example.com/%d", i%2)
		return s
	}
	s["revocation"] = map[string]any{
		"receivedAt": "2000-01-01T00:00:00.000000Z", "accountID": "1", "clientUUID": "perturbed",
		"signature": fmt.Sprintf("%02x", i%2),
	}
	return s
}

func runtimeCopy(v any) any { return runtime.DeepCopyJSONValue(v) }

// installation reads a case's installation.
func (l *loaded) installation(t *testing.T, ctx context.Context) *kommov1.KommoInstallation {
	t.Helper()
	inst := &kommov1.KommoInstallation{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: l.ns, Name: fixture.Installation(l.name)}, inst); err != nil {
		t.Fatalf("case %s: %v", l.name, err)
	}
	return inst
}

// tokenSecret reads a case's token Secret, nil when there is none.
func (l *loaded) tokenSecret(t *testing.T, ctx context.Context) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: l.ns, Name: fixture.Installation(l.name) + "-token"}, s); err != nil {
		return nil
	}
	return s
}

// captured returns a time of the captured status (moved to now), nil when absent.
func (l *loaded) captured(fields ...string) *metav1.Time {
	s, ok, _ := unstructured.NestedString(l.installed.Object, append([]string{"status"}, fields...)...)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t}
}
