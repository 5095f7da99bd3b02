package ecosystem_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func decode(t testing.TB, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// TestChartFilesAreConfigs: the files the chart's templates read are exactly config/'s
// (`make chart-files` copies them; `make verify` fails when they are stale).
func TestChartFilesAreConfigs(t *testing.T) {
	pairs := map[string]string{
		"files/rbac/controller-role.yaml": "config/rbac/controller/role.yaml",
		"files/rbac/webhook-role.yaml":    "config/rbac/webhook/role.yaml",
		"files/prometheus-rules.yaml":     "config/prometheus/rules.yaml",
		"files/webhook-write-policy.yaml": "config/webhook/write_policy.yaml",
	}
	bases, err := filepath.Glob(filepath.Join(env.Root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	for _, b := range bases {
		pairs["files/crds/"+filepath.Base(b)] = "config/crd/bases/" + filepath.Base(b)
	}
	copies, _ := filepath.Glob(filepath.Join(chartDir(), "files", "crds", "*.yaml"))
	if len(copies) != len(bases) {
		t.Errorf("the chart has %d CRDs, config/crd/bases %d: run `make chart-files`", len(copies), len(bases))
	}
	for dst, src := range pairs {
		if !bytes.Equal(readFile(t, "charts", "kommo-operator", dst), readFile(t, src)) {
			t.Errorf("charts/kommo-operator/%s differs from %s: run `make chart-files`", dst, src)
		}
	}
}

// TestChartDefaults renders the default values and compares the result with config/default:
// the same objects, the same pods (security contexts, resources, probes, ports) and flags the
// binary defines, with the same values where config/default sets them.
func TestChartDefaults(t *testing.T) {
	_, objs := mustRender(t, nil)
	kobjs := kustomize(t, "default")

	ids := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, o := range objs {
			if o.GetKind() != "Namespace" { // helm install --create-namespace
				out = append(out, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := ids(objs), ids(kobjs); !slices.Equal(got, want) {
		t.Errorf("the chart's objects differ from config/default's:\n chart:     %q\n kustomize: %q", got, want)
	}
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/name"] != "kommo-operator" || o.GetLabels()["app.kubernetes.io/instance"] != releaseName {
			t.Errorf("%s %s lacks the chart's labels: %v", o.GetKind(), o.GetName(), o.GetLabels())
		}
	}

	for _, half := range []string{"controller", "webhook"} {
		t.Run(half, func(t *testing.T) {
			name := "kommo-operator-" + half
			var got, want appsv1.Deployment
			decode(t, find(t, objs, "Deployment", name), &got)
			decode(t, find(t, kobjs, "Deployment", name), &want)
			if *got.Spec.Replicas != *want.Spec.Replicas {
				t.Errorf("replicas %d, config/default %d", *got.Spec.Replicas, *want.Spec.Replicas)
			}
			gp, wp := got.Spec.Template.Spec, want.Spec.Template.Spec
			if !equality.Semantic.DeepEqual(gp.SecurityContext, wp.SecurityContext) {
				t.Errorf("pod securityContext %+v, config/default %+v", gp.SecurityContext, wp.SecurityContext)
			}
			if gp.ServiceAccountName != wp.ServiceAccountName || gp.TerminationGracePeriodSeconds == nil ||
				*gp.TerminationGracePeriodSeconds != *wp.TerminationGracePeriodSeconds {
				t.Errorf("serviceAccountName/terminationGracePeriodSeconds differ from config/default")
			}
			if !equality.Semantic.DeepEqual(gp.TopologySpreadConstraints, wp.TopologySpreadConstraints) && half == "controller" {
				t.Errorf("topologySpreadConstraints differ")
			}
			gc, wc := gp.Containers[0], wp.Containers[0]
			for what, pair := range map[string][2]any{
				"securityContext": {gc.SecurityContext, wc.SecurityContext},
				"resources":       {gc.Resources, wc.Resources},
				"ports":           {gc.Ports, wc.Ports},
				"livenessProbe":   {gc.LivenessProbe, wc.LivenessProbe},
				"readinessProbe":  {gc.ReadinessProbe, wc.ReadinessProbe},
				"lifecycle":       {gc.Lifecycle, wc.Lifecycle},
				"env":             {gc.Env, wc.Env},
			} {
				if !equality.Semantic.DeepEqual(pair[0], pair[1]) {
					t.Errorf("container %s: chart %+v, config/default %+v", what, pair[0], pair[1])
				}
			}
			if gc.Image != "ghcr.io/kommo-operator/kommo-operator:latest" {
				t.Errorf("image %q", gc.Image)
			}
			gotFlags, wantFlags := parseFlags(t, gc.Args, half), parseFlags(t, wc.Args, half)
			for f, v := range wantFlags {
				if gotFlags[f] != v {
					t.Errorf("--%s=%q, config/default --%s=%q", f, gotFlags[f], f, v)
				}
			}
			defined := binaryFlags(t, half)
			for f := range gotFlags {
				if !defined[f] {
					t.Errorf("the chart passes --%s, which `kommo-operator %s` does not define", f, half)
				}
			}
		})
	}
}

// parseFlags maps --name[=value] arguments after the subcommand to their values ("true" for a
// bare boolean flag).
func parseFlags(t testing.TB, args []string, sub string) map[string]string {
	t.Helper()
	if len(args) == 0 || args[0] != sub {
		t.Fatalf("args %q do not start with the subcommand %s", args, sub)
	}
	flags := map[string]string{}
	for _, a := range args[1:] {
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			value = "true"
		}
		flags[name] = value
	}
	return flags
}

var (
	flagsOnce sync.Once
	flagNames map[string]map[string]bool
)

// binaryFlags reads the flags each subcommand defines from its source (cmd_controller.go,
// cmd_webhook.go), plus controller-runtime's zap flags.
func binaryFlags(t testing.TB, sub string) map[string]bool {
	t.Helper()
	flagsOnce.Do(func() {
		flagNames = map[string]map[string]bool{}
		def := regexp.MustCompile(`fs\.[A-Za-z0-9]+\((?:&[A-Za-z0-9_.]+, )?"([a-z0-9-]+)"`)
		for _, s := range []string{"controller", "webhook"} {
			flagNames[s] = map[string]bool{}
			for _, m := range def.FindAllSubmatch(readFile(t, "cmd_"+s+".go"), -1) {
				flagNames[s][string(m[1])] = true
			}
		}
	})
	if len(flagNames[sub]) < 5 {
		t.Fatalf("found only %d flags in cmd_%s.go", len(flagNames[sub]), sub)
	}
	return flagNames[sub]
}

// normalRules sorts a role's rules and their lists, so that equal grants compare equal.
func normalRules(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, l := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
			slices.Sort(l)
		}
		// One line per group/resource/verb triple, so that splitting a rule changes nothing.
		for _, g := range append(r.APIGroups, r.NonResourceURLs...) {
			for _, res := range append(slices.Clone(r.Resources), "") {
				if res == "" && len(r.Resources) > 0 {
					continue
				}
				for _, v := range r.Verbs {
					out = append(out, fmt.Sprintf("%s|%s|%s|%s", g, res, v, strings.Join(r.ResourceNames, ",")))
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestChartRBACEqualsKustomize: every Role and ClusterRole of the chart grants exactly what the
// one of the same name in config/default grants, and the bindings bind the same roles to the
// same ServiceAccounts.
func TestChartRBACEqualsKustomize(t *testing.T) {
	_, objs := mustRender(t, nil)
	kobjs := kustomize(t, "default")
	for _, kind := range []string{"ClusterRole", "Role"} {
		want := ofKind(kobjs, kind)
		if len(ofKind(objs, kind)) != len(want) {
			t.Errorf("the chart has %d %ss, config/default %d", len(ofKind(objs, kind)), kind, len(want))
		}
		for _, w := range want {
			var wr, gr rbacv1.ClusterRole
			decode(t, w, &wr)
			decode(t, find(t, objs, kind, w.GetName()), &gr)
			if g, w := normalRules(gr.Rules), normalRules(wr.Rules); !slices.Equal(g, w) {
				t.Errorf("%s %s grants\n %q\nconfig/default's grants\n %q", kind, wr.Name, g, w)
			}
			if !maps.Equal(aggregation(gr.Labels), aggregation(wr.Labels)) {
				t.Errorf("%s %s aggregates %v, config/default's %v", kind, wr.Name, aggregation(gr.Labels), aggregation(wr.Labels))
			}
		}
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, w := range ofKind(kobjs, kind) {
			var wb, gb rbacv1.RoleBinding
			decode(t, w, &wb)
			decode(t, find(t, objs, kind, w.GetName()), &gb)
			if wb.RoleRef != gb.RoleRef || !equality.Semantic.DeepEqual(wb.Subjects, gb.Subjects) {
				t.Errorf("%s %s binds %v to %v; config/default binds %v to %v", kind, wb.Name, gb.RoleRef, gb.Subjects, wb.RoleRef, wb.Subjects)
			}
		}
	}
}

func aggregation(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			out[k] = v
		}
	}
	return out
}

// TestChartCRDs: the CRDs are config/crd/bases' with the chart's labels, kept on uninstall by
// default, and left out with crds.enabled=false.
func TestChartCRDs(t *testing.T) {
	bases, _ := filepath.Glob(filepath.Join(env.Root, "config", "crd", "bases", "*.yaml"))
	check := func(t *testing.T, objs []*unstructured.Unstructured, keep bool) {
		crds := ofKind(objs, "CustomResourceDefinition")
		if len(crds) != len(bases) {
			t.Fatalf("%d CRDs rendered, %d in config/crd/bases", len(crds), len(bases))
		}
		for _, b := range bases {
			want := parseObjects(t, readFile(t, "config", "crd", "bases", filepath.Base(b)))[0]
			got := find(t, objs, "CustomResourceDefinition", want.GetName())
			if !equality.Semantic.DeepEqual(got.Object["spec"], want.Object["spec"]) {
				t.Errorf("the chart's %s differs from %s", want.GetName(), filepath.Base(b))
			}
			if policy := got.GetAnnotations()["helm.sh/resource-policy"]; (policy == "keep") != keep {
				t.Errorf("%s: helm.sh/resource-policy=%q, keep=%v", want.GetName(), policy, keep)
			}
		}
	}
	t.Run("default keeps", func(t *testing.T) { _, objs := mustRender(t, nil); check(t, objs, true) })
	t.Run("keep=false", func(t *testing.T) { _, objs := mustRender(t, values("crds.keep", false)); check(t, objs, false) })
	t.Run("enabled=false", func(t *testing.T) {
		_, objs := mustRender(t, values("crds.enabled", false))
		if n := len(ofKind(objs, "CustomResourceDefinition")); n != 0 {
			t.Errorf("crds.enabled=false renders %d CRDs", n)
		}
	})
}

// TestChartSchemaRejects: values.schema.json refuses unknown keys at every level and wrong types.
func TestChartSchemaRejects(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"unknown top-level key":      values("replicaCount", 2),
		"unknown controller key":     values("controller.leaderElection", true),
		"unknown nested key":         values("webhook.ingress.hosts", []any{"a.example.com"}),
		"unknown resources key":      values("controller.resources.limit", map[string]any{"cpu": "1"}),
		"unknown securityContext":    values("webhook.securityContext.runAsRoot", true),
		"unknown monitoring key":     values("monitoring.prometheusRule.rules", []any{}),
		"wrong type":                 values("webhook.replicas", "two"),
		"bad duration":               values("webhook.requestDeadline", "soon"),
		"bad pull policy":            values("image.pullPolicy", "Sometimes"),
		"non-string label value":     values("controller.podLabels", map[string]any{"a": 1}),
		"crds.keep not boolean":      values("crds.keep", "yes"),
		"unknown podSecurityContext": values("controller.podSecurityContext.privileged", true),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderChart(t, releaseNamespace, vals)
			if err == nil || !strings.Contains(err.Error(), "schema") {
				t.Fatalf("rendered with %v (err = %v); want a schema error", vals, err)
			}
		})
	}
}

// nonDefault are values that switch on every optional part and change most knobs.
func nonDefault() map[string]any {
	return values(
		"fullnameOverride", "kommo",
		"image.repository", "registry.example.com/kommo-operator",
		"image.digest", "sha256:"+strings.Repeat("ab", 32),
		"imagePullSecrets", []any{map[string]any{"name": "regcred"}},
		"crds.keep", false,
		"controller.replicas", 2,
		"controller.kommoQPS", 3.5,
		"controller.watchNamespace", "wa-bridge",
		"controller.extraArgs", []any{"--zap-log-level=debug"},
		"controller.metrics.secure", false,
		"controller.podLabels", map[string]any{"team": "crm"},
		"webhook.replicas", 3,
		"webhook.trustedProxyCIDRs", []any{"10.0.0.0/8", "fd00::/8"},
		"webhook.requestDeadline", "2s",
		"webhook.rateLimit", 10,
		"webhook.ingress.enabled", true,
		"webhook.ingress.className", "nginx",
		"webhook.ingress.host", "kommo-hooks.example.com",
		"webhook.ingress.tlsSecretName", "kommo-hooks-tls",
		"webhook.podDisruptionBudget.minAvailable", 2,
		"webhook.tolerations", []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "crm", "effect": "NoSchedule"}},
		"rbac.userRoles", false,
		"monitoring.serviceMonitor.enabled", true,
		"monitoring.prometheusRule.enabled", true,
	)
}

// TestChartNonDefault checks that the knobs reach the objects.
func TestChartNonDefault(t *testing.T) {
	_, objs := mustRender(t, nonDefault())
	var c, w appsv1.Deployment
	decode(t, find(t, objs, "Deployment", "kommo-controller"), &c)
	decode(t, find(t, objs, "Deployment", "kommo-webhook"), &w)
	want := "registry.example.com/kommo-operator@sha256:" + strings.Repeat("ab", 32)
	if c.Spec.Template.Spec.Containers[0].Image != want || w.Spec.Template.Spec.Containers[0].Image != want {
		t.Errorf("images %q, %q; want %q", c.Spec.Template.Spec.Containers[0].Image, w.Spec.Template.Spec.Containers[0].Image, want)
	}
	cf := parseFlags(t, c.Spec.Template.Spec.Containers[0].Args, "controller")
	for f, v := range map[string]string{"kommo-qps": "3.5", "watch-namespace": "wa-bridge", "zap-log-level": "debug", "metrics-secure": "false", "leader-elect": "true"} {
		if cf[f] != v {
			t.Errorf("controller --%s=%q, want %q", f, cf[f], v)
		}
	}
	wf := parseFlags(t, w.Spec.Template.Spec.Containers[0].Args, "webhook")
	for f, v := range map[string]string{"trusted-proxy-cidrs": "10.0.0.0/8,fd00::/8", "request-deadline": "2s", "rate-limit": "10"} {
		if wf[f] != v {
			t.Errorf("webhook --%s=%q, want %q", f, wf[f], v)
		}
	}
	if *c.Spec.Replicas != 2 || *w.Spec.Replicas != 3 {
		t.Errorf("replicas %d, %d", *c.Spec.Replicas, *w.Spec.Replicas)
	}
	if c.Spec.Template.Labels["team"] != "crm" || len(w.Spec.Template.Spec.Tolerations) != 1 {
		t.Errorf("pod labels or tolerations missing")
	}
	var ing networkingv1.Ingress
	decode(t, find(t, objs, "Ingress", "kommo-webhook"), &ing)
	if ing.Spec.Rules[0].Host != "kommo-hooks.example.com" || ing.Spec.TLS[0].SecretName != "kommo-hooks-tls" ||
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != "kommo-webhook" || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingress %+v", ing.Spec)
	}
	var svc corev1.Service
	decode(t, find(t, objs, "Service", "kommo-controller-metrics"), &svc)
	if svc.Spec.Ports[0].Name != "http" {
		t.Errorf("insecure metrics are served on port %q, want http", svc.Spec.Ports[0].Name)
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if len(ofKind(objs, kind)) == 0 {
			t.Errorf("no %s", kind)
		}
	}
	if len(ofKind(objs, "ClusterRole")) != 4 {
		t.Errorf("rbac.userRoles=false: %d ClusterRoles, want 4 (controller, webhook, metrics-auth, -reader)", len(ofKind(objs, "ClusterRole")))
	}
	rule := find(t, objs, "PrometheusRule", "kommo")
	src := parseObjects(t, readFile(t, "config", "prometheus", "rules.yaml"))[0]
	if !equality.Semantic.DeepEqual(rule.Object["spec"], src.Object["spec"]) {
		t.Errorf("the chart's PrometheusRule differs from config/prometheus/rules.yaml")
	}
}

// warnings records the API server's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

// TestChartServerSideDryRun applies the rendered chart, default and non-default, to the real
// API server as a server-side dry run into a namespace that enforces the restricted Pod
// Security Standard, and fails on any refusal or warning. The Prometheus Operator's kinds are
// left out (the API server has no such CRDs; promtool checks the rules).
func TestChartServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	for name, vals := range map[string]map[string]any{"default": nil, "non-default": nonDefault()} {
		t.Run(name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "chart-", Labels: map[string]string{
				"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}
			if err := env.Client.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
			out, err := renderChart(t, ns.Name, vals)
			if err != nil {
				t.Fatal(err)
			}
			w := &warnings{}
			cfg := rest.CopyConfig(env.Config)
			cfg.WarningHandler = w
			c, err := client.New(cfg, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, o := range parseObjects(t, out) {
				if strings.HasPrefix(o.GetAPIVersion(), "monitoring.coreos.com/") {
					continue
				}
				if err := c.Patch(ctx, o, client.Apply, client.DryRunAll, client.ForceOwnership, client.FieldOwner("chart-test")); err != nil {
					t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
				}
				n++
			}
			if n < 15 {
				t.Errorf("only %d objects applied", n)
			}
			for _, m := range w.msgs {
				t.Errorf("the API server warned: %s", m)
			}
			// The pods themselves, through PodSecurity admission.
			for _, d := range ofKind(parseObjects(t, out), "Deployment") {
				var dep appsv1.Deployment
				decode(t, d, &dep)
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "pod-", Namespace: ns.Name}, Spec: dep.Spec.Template.Spec}
				if err := env.Client.Create(ctx, pod, client.DryRunAll); err != nil {
					t.Errorf("%s's pod is refused: %v", dep.Name, err)
				}
			}
		})
	}
}

// TestChartIngressNeedsHost: an Ingress without a host is an error, not a catch-all rule.
func TestChartIngressNeedsHost(t *testing.T) {
	_, err := renderChart(t, releaseNamespace, values("webhook.ingress.enabled", true))
	if err == nil || !strings.Contains(err.Error(), "webhook.ingress.host is required") {
		t.Fatalf("err = %v, want the host to be required", err)
	}
}
