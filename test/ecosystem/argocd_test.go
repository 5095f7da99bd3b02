package ecosystem_test

import (
	"fmt"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// healthScript returns the Lua of argocd-cm's resource.customizations.health.<group>_<kind>.
func healthScript(t *testing.T, kind string) string {
	t.Helper()
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(readFile(t, "config", "argocd", "argocd-cm.yaml"), &cm); err != nil {
		t.Fatal(err)
	}
	script, ok := cm.Data["resource.customizations.health.kommo-operator.io_"+kind]
	if !ok {
		t.Fatalf("config/argocd/argocd-cm.yaml has no health check for %s", kind)
	}
	return script
}

// toLua converts a decoded JSON value the way Argo CD's Lua VM hands objects to scripts.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for i, e := range v {
			t.RawSetInt(i+1, toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("unexpected %T", v))
}

// health runs a health script on an object as Argo CD does: the safe standard libraries,
// the object in the global obj, the returned table's status and message.
func health(t *testing.T, script string, obj *unstructured.Unstructured) (string, string) {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("the script fails: %v", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the script returned %s, not a table", l.Get(-1).Type())
	}
	status, _ := hs.RawGetString("status").(lua.LString)
	message, _ := hs.RawGetString("message").(lua.LString)
	return string(status), string(message)
}

// object builds an object of kind with generation, observedGeneration, annotations and
// conditions given as "Type=Status/Reason/Message".
func object(t *testing.T, kind string, generation, observed int64, annotations map[string]string, conds ...string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kommo-operator.io/v1alpha1", "kind": kind,
		"metadata": map[string]any{"name": "wa-bridge.acme.kommo.com", "namespace": "wa", "generation": generation},
	}}
	if len(annotations) > 0 {
		u.SetAnnotations(annotations)
	}
	if observed >= 0 || len(conds) > 0 {
		status := map[string]any{}
		if observed >= 0 {
			status["observedGeneration"] = observed
		}
		var list []any
		for _, c := range conds {
			typ, rest, _ := strings.Cut(c, "=")
			parts := strings.SplitN(rest, "/", 3)
			for len(parts) < 3 {
				parts = append(parts, "")
			}
			list = append(list, map[string]any{"type": typ, "status": parts[0], "reason": parts[1], "message": parts[2],
				"lastTransitionTime": "2026-12-01T20:00:00Z", "observedGeneration": observed})
		}
		if list != nil {
			status["conditions"] = list
		}
		u.Object["status"] = status
	}
	// As the API server serves it: through JSON.
	data, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return out
}

type healthCase struct {
	name               string
	obj                *unstructured.Unstructured
	status, messageHas string
}

func runHealth(t *testing.T, kind string, cases []healthCase) {
	script := healthScript(t, kind)
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, message := health(t, script, c.obj)
			if status != c.status || !strings.Contains(message, c.messageHas) {
				t.Errorf("health %s %q, want %s with a message containing %q", status, message, c.status, c.messageHas)
			}
			if message == "" {
				t.Errorf("no message")
			}
		})
		seen[c.status] = true
	}
	for _, s := range []string{"Healthy", "Progressing", "Suspended", "Degraded"} {
		if !seen[s] {
			t.Errorf("no case of %s", s)
		}
	}
}

func TestArgoCDHealthKommoInstallation(t *testing.T) {
	const k = "KommoInstallation"
	paused := map[string]string{"kommo-operator.io/paused": "true"}
	runHealth(t, k, []healthCase{
		{"ready", object(t, k, 2, 2, nil, "Authorized=True/Authorized/", "Installed=True/Exchanged/", "Ready=True/Ready/Tokens fresh, channel connected"),
			"Healthy", "Tokens fresh"},
		{"ready while the latest install failed", object(t, k, 3, 3, nil, "Authorized=True/Authorized/", "Installed=False/InvalidCode/Kommo rejected the code", "Ready=True/Ready/"),
			"Healthy", "the latest install failed: InvalidCode: Kommo rejected the code"},
		{"never seen", object(t, k, 1, -1, nil), "Progressing", "latest change"},
		{"generation behind", object(t, k, 3, 2, nil, "Ready=True/Ready/"), "Progressing", "latest change"},
		{"no Ready yet", object(t, k, 1, 1, nil, "Authorized=Unknown/Reconciling/"), "Progressing", "Ready condition"},
		{"ready unknown", object(t, k, 1, 1, nil, "Ready=Unknown/Reconciling/Exchanging the code"), "Progressing", "Reconciling: Exchanging the code"},
		{"awaiting authorization", object(t, k, 1, 1, nil, "Ready=False/AwaitingAuthorization/No install received yet"), "Progressing", "AwaitingAuthorization"},
		{"connect pending", object(t, k, 1, 1, nil, "Ready=False/ConnectPending/"), "Progressing", "ConnectPending"},
		{"paused annotation", object(t, k, 2, 1, paused, "Ready=True/Ready/"), "Suspended", "paused"},
		{"paused reason", object(t, k, 1, 1, nil, "Ready=False/Paused/"), "Suspended", "paused"},
		{"annotation not true", object(t, k, 1, 1, map[string]string{"kommo-operator.io/paused": "false"}, "Ready=True/Ready/"), "Healthy", ""},
		{"reinstall required", object(t, k, 1, 1, nil, "Authorized=False/ReinstallRequired/", "Ready=False/ReinstallRequired/Kommo revoked the refresh token"),
			"Degraded", "ReinstallRequired: Kommo revoked the refresh token"},
		{"revoked", object(t, k, 4, 4, nil, "Ready=False/Revoked/"), "Degraded", "Revoked"},
		{"blocked", object(t, k, 1, 1, nil, "Ready=False/Blocked/Kommo answered 403"), "Degraded", "Blocked: Kommo answered 403"},
	})
}

func TestArgoCDHealthKommoIntegration(t *testing.T) {
	const k = "KommoIntegration"
	runHealth(t, k, []healthCase{
		{"ready", object(t, k, 1, 1, nil, "Ready=True/Ready/All referenced Secrets exist"), "Healthy", "Secrets exist"},
		{"generation behind", object(t, k, 2, 1, nil, "Ready=True/Ready/"), "Progressing", "latest change"},
		{"never seen", object(t, k, 1, -1, nil), "Progressing", "latest change"},
		{"ready unknown", object(t, k, 1, 1, nil, "Ready=Unknown/Reconciling/"), "Progressing", "Reconciling"},
		{"paused", object(t, k, 1, 1, map[string]string{"kommo-operator.io/paused": "true"}, "Ready=False/SecretNotFound/"), "Suspended", "paused"},
		{"secret missing", object(t, k, 1, 1, nil, "Ready=False/SecretNotFound/Secret wa/wa-bridge-kommo has no key client_secret"),
			"Degraded", "SecretNotFound: Secret wa/wa-bridge-kommo has no key client_secret"},
	})
}
