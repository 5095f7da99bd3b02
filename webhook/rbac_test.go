package webhook

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// TestGeneratedRoleIsEnough runs the webhook as a ServiceAccount bound to nothing but
// the generated config/rbac/webhook role: installs and revokes work, and the identity
// can neither read nor change Secrets.
func TestGeneratedRoleIsEnough(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(env.Root, "config", "rbac", "webhook", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	if role.Name != "kommo-operator-webhook" {
		t.Fatalf("role name %q", role.Name)
	}
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, role) })

	saNS := env.Namespace(t)
	user := "system:serviceaccount:" + saNS + ":kommo-operator-webhook"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kommo-operator-webhook-test"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "kommo-operator-webhook", Namespace: saNS}},
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, binding) })

	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	h := startWebhook(t, cfg, testOptions(), nil)
	// The readiness write probe needs nothing beyond the role.
	eventually(t, 10*time.Second, "ready", func() bool { return h.srv.readyz(nil) == nil })
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")

	// Install, reinstall and revoke as the ServiceAccount.
	inst := h.installAndLabel(ns, "bridge", "acme.kommo.com", testAccountID)
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("again"))); resp.status != http.StatusOK {
		t.Fatalf("reinstall: %d %q", resp.status, resp.body)
	}
	if resp := h.get(revokePath(ns, "bridge"), revokeQuery("client_uuid", testAccountID, testSignature)); resp.status != http.StatusOK {
		t.Fatalf("revoke: %d %q", resp.status, resp.body)
	}
	got := getInstallation(t, ns, inst.Name)
	if got.Spec.Authorization.CodeSecretRef.Name != wantSecretName(ns, "bridge", "acme.kommo.com", testCode("again")) || got.Spec.Revocation == nil {
		t.Fatalf("writes as the ServiceAccount did not land: %+v", got.Spec)
	}
	secrets, _ := objects(t, ns)
	if len(secrets) != 2 {
		t.Fatalf("%d Secrets, want 2", len(secrets))
	}

	// The same identity cannot read or change Secrets.
	sa, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	secret := secrets[0].DeepCopy()
	if err := sa.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("get Secret: %v, want Forbidden", err)
	}
	if err := sa.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("list Secrets: %v, want Forbidden", err)
	}
	secret.Labels["x"] = "y"
	if err := sa.Update(ctx, secret); !apierrors.IsForbidden(err) {
		t.Errorf("update Secret: %v, want Forbidden", err)
	}
	if err := sa.Delete(ctx, secret); !apierrors.IsForbidden(err) {
		t.Errorf("delete Secret: %v, want Forbidden", err)
	}

	access := func(group, resource, verb string) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			Groups:             []string{"system:authenticated", "system:serviceaccounts", "system:serviceaccounts:" + saNS},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Group: group, Resource: resource, Verb: verb},
		}}
		if err := env.Client.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	for _, verb := range []string{"get", "list", "watch", "update", "patch", "delete", "deletecollection"} {
		if access("", "secrets", verb) {
			t.Errorf("the webhook may %s Secrets", verb)
		}
	}
	if !access("", "secrets", "create") {
		t.Error("the webhook may not create Secrets")
	}
	for _, verb := range []string{"create", "update", "patch", "delete"} {
		if access("kommo-operator.io", "kommointegrations", verb) {
			t.Errorf("the webhook may %s KommoIntegrations", verb)
		}
	}
	for _, verb := range []string{"update", "delete"} {
		if access("kommo-operator.io", "kommoinstallations", verb) {
			t.Errorf("the webhook may %s KommoInstallations", verb)
		}
	}
	if access("kommo-operator.io", "kommoinstallations/status", "patch") {
		t.Error("the webhook may patch installation status")
	}
	if access("", "events", "create") || access("coordination.k8s.io", "leases", "create") || access("", "configmaps", "get") {
		t.Error("the webhook has permissions beyond its role")
	}
}
