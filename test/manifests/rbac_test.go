package manifests_test

import (
	"context"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// subject is who a SubjectAccessReview asks about.
type subject struct {
	user   string
	groups []string
}

func serviceAccount(ns, name string) subject {
	return subject{
		user:   "system:serviceaccount:" + ns + ":" + name,
		groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

// access is one question to the authorizer.
type access struct {
	verb, group, resource, subresource, namespace string
	// path asks about a non-resource URL instead.
	path string
}

func (a access) String() string {
	if a.path != "" {
		return a.verb + " " + a.path
	}
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	where := "in all namespaces"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return a.verb + " " + r + " " + where
}

// allowed asks the API server's authorizer (RBAC) whether s may do a.
func allowed(ctx context.Context, s subject, a access) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: s.user, Groups: s.groups}}
	if a.path != "" {
		sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.path, Verb: a.verb}
	} else {
		sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
		}
	}
	if err := env.Client.Create(ctx, sar); err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// check is an expectation about one access. needs names the generated role ("controller",
// "webhook") it depends on, if any.
type check struct {
	access
	want  bool
	needs string
}

// expect asserts the checks: the allowed ones first, polling, because the RBAC authorizer sees
// new roles and bindings through informers; the denied ones after, once, when every grant has
// been seen (a denial seen earlier could be a binding not seen yet). The polls share one
// deadline, so that a broken role fails in seconds, not in seconds per check.
func expect(t *testing.T, s subject, checks []check) {
	t.Helper()
	ctx := context.Background()
	pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, c := range checks {
		if !c.want {
			continue
		}
		t.Run("may "+c.access.String(), func(t *testing.T) {
			if c.needs != "" {
				requireGeneratedRole(t, c.needs)
			}
			var last error
			// immediate: asked at least once even after the shared deadline.
			err := wait.PollUntilContextCancel(pollCtx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
				ok, err := allowed(ctx, s, c.access)
				last = err
				return ok, nil
			})
			if err != nil {
				t.Errorf("%s may not %s (last error: %v)", s.user, c.access, last)
			}
		})
	}
	for _, c := range checks {
		if c.want {
			continue
		}
		t.Run("may not "+c.access.String(), func(t *testing.T) {
			ok, err := allowed(ctx, s, c.access)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Errorf("%s may %s", s.user, c.access)
			}
		})
	}
}

// TestAuthorization applies the RBAC of config/default for real and asks the API server's
// authorizer what each ServiceAccount may do.
func TestAuthorization(t *testing.T) {
	_, objs := render(t, "default")
	ensureNamespace(t, objs)
	var rbac []object
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbac = append(rbac, o)
		}
	}
	if _, _, err := kubectl(marshalObjects(t, rbac), "apply", "--server-side", "--field-manager", fieldManager, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	other := createNamespace(t, "team-a") // where some team keeps its KommoIntegrations

	const group = "kommo-operator.io"
	secrets := func(verb, ns string) access { return access{verb: verb, resource: "secrets", namespace: ns} }
	inst := func(verb, sub, ns string) access {
		return access{verb: verb, group: group, resource: "kommoinstallations", subresource: sub, namespace: ns}
	}
	integ := func(verb, sub, ns string) access {
		return access{verb: verb, group: group, resource: "kommointegrations", subresource: sub, namespace: ns}
	}
	leases := func(verb, ns string) access {
		return access{verb: verb, group: "coordination.k8s.io", resource: "leases", namespace: ns}
	}

	t.Run("controller", func(t *testing.T) {
		var checks []check
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			checks = append(checks,
				check{secrets(verb, other), true, "controller"},
				check{leases(verb, namespace), true, ""},
				check{leases(verb, other), false, ""},
			)
		}
		for _, verb := range []string{"get", "list", "watch"} {
			checks = append(checks,
				check{inst(verb, "", ""), true, "controller"},
				check{integ(verb, "", ""), true, "controller"},
			)
		}
		checks = append(checks,
			check{inst("patch", "", other), true, "controller"}, // finalizers and labels
			check{inst("update", "status", other), true, "controller"},
			check{inst("patch", "status", other), true, "controller"},
			check{inst("update", "finalizers", other), true, "controller"}, // blockOwnerDeletion on the token Secret
			check{integ("patch", "status", other), true, "controller"},
			check{access{verb: "create", group: "events.k8s.io", resource: "events", namespace: other}, true, "controller"},
			check{access{verb: "patch", group: "events.k8s.io", resource: "events", namespace: other}, true, "controller"},
			// Leader election records core Events in its own namespace.
			check{access{verb: "create", resource: "events", namespace: namespace}, true, ""},
			// Authentication and authorization of /metrics callers.
			check{access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}, true, ""},
			check{access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"}, true, ""},
			// Nothing beyond.
			check{access{verb: "create", resource: "pods", namespace: other}, false, ""},
			check{access{verb: "get", resource: "configmaps", namespace: other}, false, ""},
			check{access{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"}, false, ""},
			check{access{verb: "update", group: group, resource: "kommointegrations", namespace: other}, false, ""},
			check{leases("create", ""), false, ""},
		)
		expect(t, serviceAccount(namespace, controllerName), checks)
	})

	t.Run("webhook", func(t *testing.T) {
		checks := []check{
			{secrets("create", other), true, "webhook"},
			{inst("create", "", other), true, "webhook"},
			{inst("patch", "", other), true, "webhook"},
			{inst("get", "", other), true, "webhook"},
			{inst("list", "", other), true, "webhook"}, // the revoke hook finds the installation by label
			{integ("get", "", other), true, "webhook"},
			{integ("list", "", ""), true, "webhook"},
			{integ("watch", "", ""), true, "webhook"},
		}
		// It holds no secrets, elects no leader, deletes nothing, writes no status.
		for _, verb := range []string{"get", "list", "watch", "update", "patch", "delete", "deletecollection"} {
			checks = append(checks, check{secrets(verb, other), false, ""}, check{secrets(verb, namespace), false, ""})
		}
		for _, verb := range []string{"get", "create", "update"} {
			checks = append(checks, check{leases(verb, namespace), false, ""})
		}
		checks = append(checks,
			check{inst("delete", "", other), false, ""},
			check{inst("deletecollection", "", other), false, ""},
			check{integ("delete", "", other), false, ""},
			check{integ("update", "", other), false, ""},
			check{integ("patch", "", other), false, ""},
			check{inst("update", "status", other), false, ""},
			check{inst("patch", "status", other), false, ""},
			check{access{verb: "create", resource: "events", namespace: namespace}, false, ""},
			check{access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}, false, ""},
			check{access{verb: "delete", resource: "pods", namespace: namespace}, false, ""},
		)
		// With the generated role missing there are no grants to wait for: wait for the
		// controller's bindings, from the same apply, before trusting a denial.
		waitForBindings(t)
		expect(t, serviceAccount(namespace, webhookName), checks)
	})

	t.Run("user roles", func(t *testing.T) {
		ctx := context.Background()
		team := createNamespace(t, "team-b")
		for user, role := range map[string]string{"viewer": "kommo-operator-viewer", "editor": "kommo-operator-editor"} {
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: team},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			}
			if err := env.Client.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		prometheus := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: other}}
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-kommo-operator-metrics-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kommo-operator-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: prometheus.Name, Namespace: other}},
		}
		if err := env.Client.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		user := func(name string) subject { return subject{user: name, groups: []string{"system:authenticated"}} }

		viewer := []check{
			{inst("get", "", team), true, ""},
			{inst("list", "", team), true, ""},
			{integ("watch", "", team), true, ""},
			{inst("get", "status", team), true, ""},
			{secrets("get", team), false, ""},
			{secrets("list", team), false, ""},
			{inst("get", "", other), false, ""},
			{inst("patch", "", team), false, ""},
			{integ("create", "", team), false, ""},
		}
		editor := []check{
			{integ("create", "", team), true, ""},
			{integ("update", "", team), true, ""},
			{inst("patch", "", team), true, ""}, // annotate: refresh-requested-at, paused
			{inst("delete", "", team), true, ""},
			{secrets("get", team), false, ""},
			{inst("update", "status", team), false, ""},
			{inst("delete", "", other), false, ""},
		}
		metrics := []check{
			{access{verb: "get", path: "/metrics"}, true, ""},
			{secrets("get", other), false, ""},
		}
		t.Run("viewer", func(t *testing.T) { expect(t, user("viewer"), viewer) })
		t.Run("editor", func(t *testing.T) { expect(t, user("editor"), editor) })
		t.Run("metrics reader", func(t *testing.T) { expect(t, serviceAccount(other, prometheus.Name), metrics) })
		t.Run("webhook reads no metrics", func(t *testing.T) {
			expect(t, serviceAccount(namespace, webhookName), []check{{access{verb: "get", path: "/metrics"}, false, ""}})
		})
	})
}

// createNamespace creates a namespace with a fixed name (the subtests are named after it),
// unless it exists.
func createNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

// waitForBindings waits until the authorizer has seen the controller's ClusterRoleBinding and
// RoleBinding, applied together with the webhook's, so that a denial afterwards is a denial.
func waitForBindings(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	sa := serviceAccount(namespace, controllerName)
	for _, a := range []access{
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: namespace},
		{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
	} {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			ok, err := allowed(ctx, sa, a)
			return ok, err
		})
		if err != nil {
			t.Fatalf("the controller's bindings never became effective (%s): %v", a, err)
		}
	}
}
