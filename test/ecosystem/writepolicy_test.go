package ecosystem_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/webhook"
)

const (
	policyIntegration = "bridge"
	policyClientID    = "01d01160-d7a0-4087-b4af-6a1bb83fcd1d"
	policyAccountID   = "32720107"
	policySignature   = "56085d36424bc5ba9107165909dd0b11e9d32595b52da36c1efc55fb5a9538d0"
)

// forbiddenSpec has a sample value for every spec field the webhook must not write. A spec
// field the CRD gains must be added here or to allowedSpec (and then to the policy):
// TestWritePolicy fails on a field in neither.
var forbiddenSpec = map[string]any{
	"longLivedTokenSecretRef": map[string]any{"name": "some-secret", "key": "token"},
	"sources":                 []any{map[string]any{"externalID": "wa-1", "name": "WhatsApp"}},
}

// allowedSpec are the spec fields the webhook writes.
var allowedSpec = []string{"integrationRef", "accountDomain", "authorization", "revocation"}

func codeName(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "kommo-code-" + hex.EncodeToString(sum[:16])
}

func testCode(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "def50200" + strings.Repeat(hex.EncodeToString(sum[:]), 10)[:600]
}

// TestWritePolicy installs the write policy (config/webhook's, then the chart's), runs the real
// webhook as its ServiceAccount (impersonated, bound to nothing but the generated webhook role)
// and checks that its real writes pass while every other write of that identity is refused.
func TestWritePolicy(t *testing.T) {
	for _, variant := range []string{"kustomize", "chart"} {
		t.Run(variant, func(t *testing.T) { testWritePolicy(t, variant) })
	}
}

func testWritePolicy(t *testing.T, variant string) {
	ctx := context.Background()
	saNS := env.Namespace(t)
	user := "system:serviceaccount:" + saNS + ":kommo-operator-webhook"

	// The webhook's generated role, bound to the ServiceAccount.
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(readFile(t, "config", "rbac", "webhook", "role.yaml"), role); err != nil {
		t.Fatal(err)
	}
	role.Name = "policy-test-" + saNS
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "kommo-operator-webhook", Namespace: saNS}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}

	// The policy and its binding, as shipped.
	var policy []*unstructured.Unstructured
	switch variant {
	case "kustomize":
		policy = parseObjects(t, readFile(t, "config", "webhook", "write_policy.yaml"))
	case "chart":
		out, err := renderChart(t, saNS, nil)
		if err != nil {
			t.Fatal(err)
		}
		policy = append(ofKind(parseObjects(t, out), "ValidatingAdmissionPolicy"), ofKind(parseObjects(t, out), "ValidatingAdmissionPolicyBinding")...)
	}
	if len(policy) != 2 {
		t.Fatalf("%d policy objects, want a policy and a binding", len(policy))
	}
	for _, o := range policy {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}

	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNS, "system:authenticated"}}
	sa, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)

	newInst := func(host string) *kommov1.KommoInstallation {
		return &kommov1.KommoInstallation{
			ObjectMeta: metav1.ObjectMeta{Name: policyIntegration + "." + host, Namespace: ns,
				Labels: map[string]string{kommov1.LabelIntegration: policyIntegration}},
			Spec: kommov1.KommoInstallationSpec{
				IntegrationRef: kommov1.LocalObjectReference{Name: policyIntegration},
				AccountDomain:  host,
				Authorization: &kommov1.Authorization{CodeSecretRef: kommov1.SecretKeyRef{Name: codeName(host), Key: "code"},
					ReceivedAt: metav1.NewMicroTime(time.Now())},
			},
		}
	}
	refused := func(t *testing.T, what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed, want refused by the write policy", what)
		} else if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "kommo-operator-webhook-writes") {
			t.Errorf("%s: %v, want Forbidden by the write policy", what, err)
		}
	}

	// Policies take effect asynchronously: wait until a forbidden create is refused.
	probe := newInst("probe.kommo.com")
	probe.Spec.Authorization = nil
	probe.Spec.LongLivedTokenSecretRef = &kommov1.SecretKeyRef{Name: "x", Key: "token"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := sa.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "kommo-operator-webhook-writes") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write policy never took effect (last answer: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The webhook's real writes, through its HTTP routes: install, reinstall, revoke.
	base := startPolicyWebhook(t, cfg)
	integ := &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: policyIntegration, Namespace: ns},
		Spec: kommov1.KommoIntegrationSpec{ClientID: policyClientID,
			ClientSecretRef: kommov1.SecretKeyRef{Name: "bridge-kommo", Key: "client_secret"},
			RedirectURI:     "https://hooks.example.com/kommo/" + ns + "/bridge/redirect"},
	}
	if err := env.Client.Create(ctx, integ); err != nil {
		t.Fatal(err)
	}
	redirect := fmt.Sprintf("%s/kommo/%s/%s/redirect", base, ns, policyIntegration)
	key := client.ObjectKey{Namespace: ns, Name: policyIntegration + ".acme.kommo.com"}
	get := func(t *testing.T, u string, q url.Values) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(u + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			// 404 until the webhook's cache has the integration.
			if resp.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	get(t, redirect, url.Values{"referer": {"acme.kommo.com"}, "code": {testCode("first")}})
	inst := &kommov1.KommoInstallation{}
	if err := env.Client.Get(ctx, key, inst); err != nil || inst.Spec.Authorization == nil {
		t.Fatalf("the install was not recorded: %v %+v", err, inst.Spec)
	}
	// The controller labels it with the account id and holds its finalizer.
	patchAdmin(t, inst, map[string]any{"metadata": map[string]any{
		"labels": map[string]any{kommov1.LabelAccountID: policyAccountID}, "finalizers": []any{kommov1.FinalizerChannel}}})
	t.Cleanup(func() { patchAdmin(t, inst, map[string]any{"metadata": map[string]any{"finalizers": nil}}) })
	first := inst.Spec.Authorization.CodeSecretRef.Name
	get(t, redirect, url.Values{"referer": {"acme.kommo.com"}, "code": {testCode("second")}, "state": {"v1.1.abc.def"}})
	get(t, fmt.Sprintf("%s/kommo/%s/%s/revoke", base, ns, policyIntegration),
		url.Values{"client_uuid": {policyClientID}, "account_id": {policyAccountID}, "signature": {policySignature}})
	if err := env.Client.Get(ctx, key, inst); err != nil {
		t.Fatal(err)
	}
	if inst.Spec.Authorization.CodeSecretRef.Name == first || inst.Spec.Revocation == nil {
		t.Fatalf("the reinstall or the revocation was not recorded: %+v", inst.Spec)
	}

	// Every other write of the same identity is refused.
	t.Run("create", func(t *testing.T) {
		for name, mutate := range map[string]func(*kommov1.KommoInstallation){
			"an annotation": func(i *kommov1.KommoInstallation) {
				i.Annotations = map[string]string{kommov1.AnnotationPaused: "true"}
			},
			"another label":             func(i *kommov1.KommoInstallation) { i.Labels[kommov1.LabelAccountID] = "1" },
			"a wrong integration label": func(i *kommov1.KommoInstallation) { i.Labels[kommov1.LabelIntegration] = "other" },
			"a finalizer":               func(i *kommov1.KommoInstallation) { i.Finalizers = []string{"example.com/hold"} },
			"an owner": func(i *kommov1.KommoInstallation) {
				i.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "4b0ab3d6-5a7e-4b8e-9d55-2b8d0e6c3c11"}}
			},
			"a token Secret as code": func(i *kommov1.KommoInstallation) {
				i.Spec.Authorization.CodeSecretRef = kommov1.SecretKeyRef{Name: i.Name + "-token", Key: "code"}
			},
			"another code key": func(i *kommov1.KommoInstallation) { i.Spec.Authorization.CodeSecretRef.Key = "access_token" },
		} {
			i := newInst("create.kommo.com")
			mutate(i)
			refused(t, name, sa.Create(ctx, i, client.DryRunAll))
			// The same object is fine for anyone else: the refusal is the policy's.
			if err := env.Client.Create(ctx, i.DeepCopy(), client.DryRunAll); err != nil {
				t.Errorf("%s: an administrator cannot create it either: %v", name, err)
			}
		}
		if err := sa.Create(ctx, newInst("create.kommo.com"), client.DryRunAll); err != nil {
			t.Errorf("a plain create like the webhook's is refused: %v", err)
		}
	})

	// A hand-declared installation without authorization, as a person would create it.
	declared := newInst("declared.kommo.com")
	declared.Spec.Authorization = nil
	if err := env.Client.Create(ctx, declared); err != nil {
		t.Fatal(err)
	}
	t.Run("patch", func(t *testing.T) {
		for name, patch := range map[string]map[string]any{
			"labels":           {"metadata": map[string]any{"labels": map[string]any{kommov1.LabelAccountID: "666"}}},
			"annotations":      {"metadata": map[string]any{"annotations": map[string]any{kommov1.AnnotationRefreshRequestedAt: "2026-12-01T00:00:00Z"}}},
			"finalizers":       {"metadata": map[string]any{"finalizers": nil}},
			"code Secret name": {"spec": map[string]any{"authorization": map[string]any{"codeSecretRef": map[string]any{"name": "bridge.acme.kommo.com-token"}}}},
		} {
			refused(t, name, sa.Patch(ctx, inst.DeepCopy(), mergePatch(t, patch), client.DryRunAll))
		}
		if err := sa.Patch(ctx, declared.DeepCopy(), mergePatch(t, map[string]any{"spec": map[string]any{"authorization": map[string]any{
			"codeSecretRef": map[string]any{"name": codeName("x"), "key": "code"}, "receivedAt": metav1.NewMicroTime(time.Now())}}}), client.DryRunAll); err != nil {
			t.Errorf("patching spec.authorization as the webhook does is refused: %v", err)
		}
	})

	// Every spec field of the CRD is either the webhook's or refused on create and on patch.
	t.Run("every spec field", func(t *testing.T) {
		for _, field := range specFields(t) {
			if slices.Contains(allowedSpec, field) {
				continue
			}
			value, ok := forbiddenSpec[field]
			if !ok {
				t.Errorf("spec.%s is new: add a sample to forbiddenSpec (or allowedSpec) and a rule to config/webhook/write_policy.yaml", field)
				continue
			}
			i := newInst("field.kommo.com")
			i.Spec.Authorization = nil
			u, err := toUnstructured(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := unstructured.SetNestedField(u.Object, value, "spec", field); err != nil {
				t.Fatal(err)
			}
			refused(t, "create with spec."+field, sa.Create(ctx, u, client.DryRunAll))
			if err := env.Client.Create(ctx, u.DeepCopy(), client.DryRunAll); err != nil {
				t.Errorf("spec.%s: the sample is invalid for anyone: %v", field, err)
			}
			refused(t, "patch of spec."+field, sa.Patch(ctx, declared.DeepCopy(), mergePatch(t, map[string]any{"spec": map[string]any{field: value}}), client.DryRunAll))
		}
	})
}

// specFields lists the spec properties of the KommoInstallation CRD as the API server serves it.
func specFields(t *testing.T) []string {
	t.Helper()
	crd := parseObjects(t, readFile(t, "config", "crd", "bases", "kommo-operator.io_kommoinstallations.yaml"))[0]
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var fields []string
	for _, v := range versions {
		props, _, _ := unstructured.NestedMap(v.(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties")
		for f := range props {
			if !slices.Contains(fields, f) {
				fields = append(fields, f)
			}
		}
	}
	if len(fields) < len(allowedSpec) {
		t.Fatalf("the CRD's spec has only %v", fields)
	}
	slices.Sort(fields)
	return fields
}

func toUnstructured(obj *kommov1.KommoInstallation) (*unstructured.Unstructured, error) {
	obj = obj.DeepCopy()
	obj.APIVersion, obj.Kind = kommov1.GroupVersion.String(), "KommoInstallation"
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

func mergePatch(t testing.TB, patch map[string]any) client.Patch {
	t.Helper()
	data, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	return client.RawPatch(types.MergePatchType, data)
}

func patchAdmin(t testing.TB, obj client.Object, patch map[string]any) {
	t.Helper()
	if err := env.Client.Patch(context.Background(), obj, mergePatch(t, patch)); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// startPolicyWebhook runs the real webhook with cfg and returns its base URL.
func startPolicyWebhook(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	opts := webhook.DefaultOptions()
	opts.RateLimit = 0
	opts.BindAddress = "127.0.0.1:0"
	opts.ShutdownDelay = 0
	mo := webhook.ManagerOptions(webhook.NewScheme(), opts)
	mo.Metrics = metricsserver.Options{BindAddress: "0"}
	mo.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := webhook.Setup(mgr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("the webhook did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for srv.Addr() == "" {
		select {
		case err := <-done:
			t.Fatalf("the webhook stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + srv.Addr()
}
