package manifests_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestEveryKustomizationBuilds renders every kustomization under config/, the optional ones
// (examples, Prometheus) included.
func TestEveryKustomizationBuilds(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir(configDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			rel, _ := filepath.Rel(configDir, filepath.Dir(path))
			dirs = append(dirs, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"crd", "rbac", "controller", "webhook", "default", "examples/ingress", "prometheus"} {
		if !slices.Contains(dirs, filepath.FromSlash(want)) {
			t.Errorf("config/%s/kustomization.yaml is missing", want)
		}
	}
	for _, dir := range dirs {
		t.Run(filepath.ToSlash(dir), func(t *testing.T) { render(t, dir) })
	}
}

// TestDefaultObjects checks the inventory of config/default: what is there, where, and what
// must stay out of it.
func TestDefaultObjects(t *testing.T) {
	_, objs := render(t, "default")
	want := map[string]bool{
		"Namespace/" + namespace: true,
		"CustomResourceDefinition/kommointegrations.kommo-operator.io":  true,
		"CustomResourceDefinition/kommoinstallations.kommo-operator.io": true,
		"ServiceAccount/" + namespace + "/" + controllerName:            true,
		"ServiceAccount/" + namespace + "/" + webhookName:               true,
		"ClusterRole/" + controllerName:                                 true,
		"ClusterRole/" + webhookName:                                    true,
		"ClusterRoleBinding/" + controllerName:                          true,
		"ClusterRoleBinding/" + webhookName:                             true,
		"Role/" + namespace + "/kommo-operator-leader-election":         true,
		"RoleBinding/" + namespace + "/kommo-operator-leader-election":  true,
		"ClusterRole/kommo-operator-metrics-auth":                       true,
		"ClusterRoleBinding/kommo-operator-metrics-auth":                true,
		"ClusterRole/kommo-operator-metrics-reader":                     true,
		"ClusterRole/kommo-operator-editor":                             true,
		"ClusterRole/kommo-operator-viewer":                             true,
		"Deployment/" + namespace + "/" + controllerName:                true,
		"Service/" + namespace + "/kommo-operator-controller-metrics":   true,
		"Deployment/" + namespace + "/" + webhookName:                   true,
		"Service/" + namespace + "/" + webhookName:                      true,
		"Service/" + namespace + "/kommo-operator-webhook-metrics":      true,
		"PodDisruptionBudget/" + namespace + "/" + webhookName:          true,
	}
	// What the webhook may write to installations (config/webhook/write_policy.yaml).
	want["ValidatingAdmissionPolicy/kommo-operator-webhook-writes"] = true
	want["ValidatingAdmissionPolicyBinding/kommo-operator-webhook-writes"] = true
	clusterScoped := map[string]bool{"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true,
		"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}
	seen := map[string]bool{}
	for _, o := range objs {
		id := o.id()
		if seen[id] {
			t.Errorf("%s is rendered twice", id)
		}
		seen[id] = true
		if !want[id] {
			// Ingresses and ServiceMonitors are examples, kept out of the default on purpose.
			t.Errorf("unexpected object in config/default: %s (add it to this test if it belongs there)", id)
		}
		if clusterScoped[o.GetKind()] != (o.GetNamespace() == "") {
			t.Errorf("%s: namespace %q, want %q", id, o.GetNamespace(), map[bool]string{true: "", false: namespace}[clusterScoped[o.GetKind()]])
		}
		if o.GetNamespace() != "" && o.GetNamespace() != namespace {
			t.Errorf("%s is outside %s", id, namespace)
		}
		if o.GetLabels()["app.kubernetes.io/name"] != "kommo-operator" {
			t.Errorf("%s lacks the label app.kubernetes.io/name=kommo-operator", id)
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("config/default lacks %s", id)
		}
	}

	var ns corev1.Namespace
	find(t, objs, "Namespace", namespace).decode(t, &ns)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace label pod-security.kubernetes.io/enforce = %q, want restricted", got)
	}
}

// TestDeployments checks both Deployments against the contract: restricted Pod Security, the
// image, the subcommand and its flags, ports and probes that agree with the flags.
func TestDeployments(t *testing.T) {
	_, objs := render(t, "default")
	for _, tc := range []struct {
		name, component, serviceAccount string
		replicas                        int32
		// ports maps a container port name to the flag whose address it serves.
		ports map[string]string
	}{
		{controllerName, "controller", controllerName, 1, map[string]string{
			"metrics": "metrics-bind-address", "health": "health-probe-bind-address",
		}},
		{webhookName, "webhook", webhookName, 2, map[string]string{
			"http": "bind-address", "metrics": "metrics-bind-address", "health": "health-probe-bind-address",
		}},
	} {
		t.Run(tc.component, func(t *testing.T) {
			var d appsv1.Deployment
			find(t, objs, "Deployment", tc.name).decode(t, &d)
			if got := ptr.Deref(d.Spec.Replicas, 1); got != tc.replicas {
				t.Errorf("replicas = %d, want %d", got, tc.replicas)
			}
			wantLabels := map[string]string{"app.kubernetes.io/name": "kommo-operator", "app.kubernetes.io/component": tc.component}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %v does not match the pod labels %v", sel, d.Spec.Template.Labels)
			}
			for k, v := range wantLabels {
				if d.Labels[k] != v || d.Spec.Template.Labels[k] != v || d.Spec.Selector.MatchLabels[k] != v {
					t.Errorf("label %s=%s missing on the Deployment, its selector or its pods", k, v)
				}
			}
			pod := d.Spec.Template.Spec
			if pod.ServiceAccountName != tc.serviceAccount {
				t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, tc.serviceAccount)
			}
			find(t, objs, "ServiceAccount", pod.ServiceAccountName)
			checkRestricted(t, pod)
			if pod.TerminationGracePeriodSeconds == nil {
				t.Error("terminationGracePeriodSeconds is not set")
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			if c.Image != image {
				t.Errorf("image = %q, want %q", c.Image, image)
			}
			if len(c.Command) != 0 {
				t.Errorf("command = %q: leave it to the image's ENTRYPOINT", c.Command)
			}
			if len(c.Args) == 0 || c.Args[0] != tc.component {
				t.Fatalf("args = %q, want the subcommand %q first", c.Args, tc.component)
			}
			leaderElect, hasLeaderElect := flagValue(c.Args[1:], "leader-elect")
			switch {
			case tc.component == "controller" && (!hasLeaderElect || (leaderElect != "" && leaderElect != "true")):
				t.Errorf("the controller runs without --leader-elect: %q", c.Args)
			case tc.component == "webhook" && hasLeaderElect:
				t.Errorf("the webhook takes no --leader-elect: %q", c.Args)
			}

			// Every listener is set explicitly and declared as a named container port.
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for portName, flag := range tc.ports {
				addr, ok := flagValue(c.Args[1:], flag)
				if !ok {
					t.Errorf("--%s is not set", flag)
					continue
				}
				if got := addrPort(t, addr); got != ports[portName] {
					t.Errorf("--%s=%s but container port %q is %d", flag, addr, portName, ports[portName])
				}
			}
			probeAddr, _ := flagValue(c.Args[1:], "health-probe-bind-address")
			for _, p := range []struct {
				kind, path string
				probe      *corev1.Probe
			}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", p.kind)
					continue
				}
				if p.probe.HTTPGet.Path != p.path {
					t.Errorf("%s probe path = %q, want %q", p.kind, p.probe.HTTPGet.Path, p.path)
				}
				if got := resolvePort(c, p.probe.HTTPGet.Port); got != addrPort(t, probeAddr) {
					t.Errorf("%s probe port %s is %d, but --health-probe-bind-address=%s", p.kind, p.probe.HTTPGet.Port.String(), got, probeAddr)
				}
			}

			// The binary holds the Go runtime to 90 % of the memory limit it is given.
			if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
				t.Error("no memory limit")
			}
			var memoryEnv *corev1.EnvVar
			for i := range c.Env {
				if c.Env[i].Name == "KOMMO_MEMORY_LIMIT" {
					memoryEnv = &c.Env[i]
				}
			}
			if memoryEnv == nil || memoryEnv.ValueFrom == nil || memoryEnv.ValueFrom.ResourceFieldRef == nil ||
				memoryEnv.ValueFrom.ResourceFieldRef.Resource != "limits.memory" {
				t.Errorf("KOMMO_MEMORY_LIMIT is not set from limits.memory: %+v", memoryEnv)
			}

			if tc.component == "webhook" {
				if len(pod.TopologySpreadConstraints) == 0 && (pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil) {
					t.Error("the webhook replicas are not spread (no topologySpreadConstraints or pod anti-affinity)")
				}
				for _, tsc := range pod.TopologySpreadConstraints {
					sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
					if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
						t.Errorf("topology spread over %s does not select the webhook's pods", tsc.TopologyKey)
					}
				}
				// Kommo never resends a redirect: a rollout must not reduce the serving replicas.
				if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
					t.Error("the webhook's rolling update must have maxUnavailable: 0")
				}
			}
		})
	}
}

// checkRestricted checks a pod spec against the restricted Pod Security Standard as the
// manifests promise it (the API server's own check is in TestPodSecurityAdmission).
func checkRestricted(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil {
		t.Fatal("no pod securityContext")
	}
	if !ptr.Deref(psc.RunAsNonRoot, false) {
		t.Error("securityContext.runAsNonRoot is not true")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("securityContext.seccompProfile.type is not RuntimeDefault")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the pod uses a host namespace")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		if ptr.Deref(sc.AllowPrivilegeEscalation, true) {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if ptr.Deref(sc.Privileged, false) {
			t.Errorf("container %s: privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if ptr.Deref(uid, 0) != 65532 {
			t.Errorf("container %s: runAsUser = %v, want 65532 (the image's nonroot user)", c.Name, ptr.Deref(uid, 0))
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[res]; !ok {
				t.Errorf("container %s: no %s request", c.Name, res)
			}
			if _, ok := c.Resources.Limits[res]; !ok {
				t.Errorf("container %s: no %s limit", c.Name, res)
			}
		}
	}
}

// flagValue finds --name (or -name) in args: its value after "=", or "" for a bare boolean.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// addrPort is the port of a listen address such as ":8081".
func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("listen address %q: %v", addr, err)
		return -1
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Errorf("listen address %q: %v", addr, err)
		return -1
	}
	return int32(n)
}

// resolvePort resolves a port by name or number against a container's ports; -1 if unknown.
func resolvePort(c corev1.Container, port intstr.IntOrString) int32 {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort
		}
	}
	return -1
}

// TestServicesAndDisruptionBudget checks that every Service and the PodDisruptionBudget
// select the pods they are meant for and that every Service port reaches a container port.
func TestServicesAndDisruptionBudget(t *testing.T) {
	_, objs := render(t, "default")
	deployments := map[string]appsv1.Deployment{}
	for _, name := range []string{controllerName, webhookName} {
		var d appsv1.Deployment
		find(t, objs, "Deployment", name).decode(t, &d)
		deployments[name] = d
	}
	for _, tc := range []struct {
		service, deployment string
		port                int32
		containerPort       int32
	}{
		{"kommo-operator-controller-metrics", controllerName, 8443, 8443},
		{webhookName, webhookName, 80, 8080},
		{"kommo-operator-webhook-metrics", webhookName, 8082, 8082},
	} {
		t.Run(tc.service, func(t *testing.T) {
			var s corev1.Service
			find(t, objs, "Service", tc.service).decode(t, &s)
			// The Service must select the pods of exactly its Deployment.
			for name, d := range deployments {
				selects := len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels))
				if selects != (name == tc.deployment) {
					t.Errorf("selector %v selects %s: %v, want %v", s.Spec.Selector, name, selects, name == tc.deployment)
				}
			}
			if len(s.Spec.Ports) != 1 {
				t.Fatalf("%d ports, want 1", len(s.Spec.Ports))
			}
			p := s.Spec.Ports[0]
			if p.Port != tc.port {
				t.Errorf("port = %d, want %d", p.Port, tc.port)
			}
			d := deployments[tc.deployment]
			if got := resolvePort(d.Spec.Template.Spec.Containers[0], p.TargetPort); got != tc.containerPort {
				t.Errorf("targetPort %s reaches container port %d, want %d", p.TargetPort.String(), got, tc.containerPort)
			}
		})
	}

	var pdb policyv1.PodDisruptionBudget
	find(t, objs, "PodDisruptionBudget", webhookName).decode(t, &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range deployments {
		if got := sel.Matches(labels.Set(d.Spec.Template.Labels)); got != (name == webhookName) {
			t.Errorf("PodDisruptionBudget selects %s: %v", name, got)
		}
	}
}

// TestServerSideDryRun applies config/default and the Ingress example to the API server as
// a server-side dry run: schema, field validation (strict), defaulting and admission all run.
func TestServerSideDryRun(t *testing.T) {
	for _, dir := range []string{"default", "examples/ingress"} {
		t.Run(dir, func(t *testing.T) {
			out, objs := render(t, dir)
			ensureNamespace(t, objs)
			stdout, stderr, err := kubectl(out, "apply", "--server-side", "--dry-run=server", "--field-manager", fieldManager, "-f", "-")
			if err != nil {
				t.Fatal(err)
			}
			// Warnings name deprecated APIs and Pod Security violations of the Deployments.
			if strings.Contains(stderr, "Warning") {
				t.Errorf("the API server warned:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != len(objs) {
				t.Errorf("applied %d objects, rendered %d:\n%s", len(lines), len(objs), stdout)
			}
			for _, l := range lines {
				if !strings.HasSuffix(l, "serverside-applied (server dry run)") {
					t.Errorf("unexpected apply result: %s", l)
				}
			}
		})
	}
}

// TestPodSecurityAdmission creates each Deployment's pod (dry run) in the operator's namespace,
// where the API server's PodSecurity admission enforces the restricted standard, and checks
// that the same admission rejects a pod that is not restricted, so that the pass means something.
func TestPodSecurityAdmission(t *testing.T) {
	ctx := context.Background()
	_, objs := render(t, "default")
	ensureNamespace(t, objs)
	for _, name := range []string{controllerName, webhookName} {
		t.Run(name, func(t *testing.T) {
			var d appsv1.Deployment
			find(t, objs, "Deployment", name).decode(t, &d)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: namespace, Labels: d.Spec.Template.Labels},
				Spec:       *d.Spec.Template.Spec.DeepCopy(),
			}
			if err := env.Client.Create(ctx, pod, client.DryRunAll); err != nil {
				t.Fatalf("the restricted namespace rejects the pod: %v", err)
			}

			loose := &corev1.Pod{ObjectMeta: pod.ObjectMeta, Spec: *d.Spec.Template.Spec.DeepCopy()}
			loose.Spec.SecurityContext.RunAsNonRoot = nil
			loose.Spec.SecurityContext.RunAsUser = nil
			loose.Spec.Containers[0].SecurityContext = nil
			err := env.Client.Create(ctx, loose, client.DryRunAll)
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
				t.Fatalf("PodSecurity admission let a non-restricted pod in (err = %v): the check above proves nothing", err)
			}
		})
	}
}

// TestRBACRules checks, statically, which roles are bound to each ServiceAccount and what the
// webhook's and the user-facing roles grant. TestAuthorization asks the API server.
func TestRBACRules(t *testing.T) {
	_, objs := render(t, "default")
	bound := func(sa string) (refs []string, rules []rbacv1.PolicyRule) {
		t.Helper()
		for _, o := range objs {
			var subjects []rbacv1.Subject
			var ref rbacv1.RoleRef
			var bindingNS string
			switch o.GetKind() {
			case "ClusterRoleBinding":
				var b rbacv1.ClusterRoleBinding
				o.decode(t, &b)
				subjects, ref = b.Subjects, b.RoleRef
			case "RoleBinding":
				var b rbacv1.RoleBinding
				o.decode(t, &b)
				subjects, ref, bindingNS = b.Subjects, b.RoleRef, b.Namespace
			default:
				continue
			}
			if !slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
				return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == namespace
			}) {
				continue
			}
			target := find(t, objs, ref.Kind, ref.Name)
			if ref.Kind == "Role" && target.GetNamespace() != bindingNS {
				t.Errorf("%s binds a Role of another namespace", o.id())
			}
			// A Role has the fields of a ClusterRole but for aggregationRule.
			var role rbacv1.ClusterRole
			target.decode(t, &role)
			refs = append(refs, ref.Kind+"/"+ref.Name)
			rules = append(rules, role.Rules...)
		}
		slices.Sort(refs)
		return refs, rules
	}

	t.Run("webhook", func(t *testing.T) {
		refs, rules := bound(webhookName)
		if want := []string{"ClusterRole/" + webhookName}; !slices.Equal(refs, want) {
			t.Errorf("the webhook is bound to %q, want only %q", refs, want)
		}
		requireGeneratedRole(t, "webhook")
		for _, r := range rules {
			if grants(r, "", "secrets", "get", "list", "watch", "update", "patch", "delete", "deletecollection") {
				t.Errorf("the webhook may read or change Secrets: %+v", r)
			}
			if grants(r, "coordination.k8s.io", "leases", "get", "list", "watch", "create", "update", "patch", "delete") {
				t.Errorf("the webhook may use Leases: %+v", r)
			}
			if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, "*") {
				t.Errorf("the webhook has a wildcard rule: %+v", r)
			}
		}
		if !slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return grants(r, "", "secrets", "create") }) {
			t.Error("the webhook may not create Secrets (the code Secret)")
		}
	})

	t.Run("controller", func(t *testing.T) {
		refs, _ := bound(controllerName)
		want := []string{"ClusterRole/" + controllerName, "ClusterRole/kommo-operator-metrics-auth", "Role/kommo-operator-leader-election"}
		if !slices.Equal(refs, want) {
			t.Errorf("the controller is bound to %q, want %q", refs, want)
		}
		var crb rbacv1.ClusterRole
		find(t, objs, "ClusterRole", controllerName).decode(t, &crb)
		for _, r := range crb.Rules {
			if grants(r, "coordination.k8s.io", "leases", "create") {
				t.Errorf("the controller's ClusterRole grants Leases cluster-wide; they belong in the leader-election Role: %+v", r)
			}
		}
	})

	t.Run("user roles", func(t *testing.T) {
		for _, name := range []string{"kommo-operator-viewer", "kommo-operator-editor"} {
			var r rbacv1.ClusterRole
			find(t, objs, "ClusterRole", name).decode(t, &r)
			for _, rule := range r.Rules {
				for _, g := range rule.APIGroups {
					if g != "kommo-operator.io" {
						t.Errorf("%s grants on API group %q; it is only about the operator's kinds", name, g)
					}
				}
				if name == "kommo-operator-viewer" {
					for _, v := range rule.Verbs {
						if v != "get" && v != "list" && v != "watch" {
							t.Errorf("%s grants %q", name, v)
						}
					}
				}
			}
		}
		for name, label := range map[string]string{
			"kommo-operator-viewer": "rbac.authorization.k8s.io/aggregate-to-view",
			"kommo-operator-editor": "rbac.authorization.k8s.io/aggregate-to-edit",
		} {
			if got := find(t, objs, "ClusterRole", name).GetLabels()[label]; got != "true" {
				t.Errorf("%s: label %s = %q, want \"true\"", name, label, got)
			}
		}
	})
}

// grants reports whether rule grants any of verbs on resource in group.
func grants(rule rbacv1.PolicyRule, group, resource string, verbs ...string) bool {
	match := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	if !match(rule.APIGroups, group) || !match(rule.Resources, resource) {
		return false
	}
	return slices.ContainsFunc(verbs, func(v string) bool { return match(rule.Verbs, v) })
}

// TestAnotherNamespace renders an overlay of config/default with another namespace, as the
// default kustomization documents, and checks that nothing is left in kommo-operator-system:
// the ServiceAccount subjects of the bindings must move with the ServiceAccounts.
func TestAnotherNamespace(t *testing.T) {
	overlay := filepath.Join(configDir, "test-overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	kustomization := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kommo\nresources:\n  - ../default\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(overlay)
	out, objs := render(t, "test-overlay")
	if strings.Contains(string(out), namespace) {
		t.Errorf("%s still appears in the output although the overlay sets namespace kommo", namespace)
	}
	find(t, objs, "Namespace", "kommo")
	for _, o := range objs {
		var subjects []rbacv1.Subject
		switch o.GetKind() {
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			o.decode(t, &b)
			subjects = b.Subjects
		case "RoleBinding":
			var b rbacv1.RoleBinding
			o.decode(t, &b)
			subjects = b.Subjects
		}
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace != "kommo" {
				t.Errorf("%s: subject %s/%s did not move to namespace kommo", o.id(), s.Namespace, s.Name)
			}
		}
	}
}
