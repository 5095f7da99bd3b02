package ecosystem_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	releaseName      = "kommo-operator"
	releaseNamespace = "kommo-operator-system"
)

func chartDir() string { return filepath.Join(env.Root, "charts", "kommo-operator") }

// renderChart renders the chart the way `helm template` does (client-only install dry run),
// values validated against values.schema.json by Helm itself.
func renderChart(t testing.TB, namespace string, values map[string]any) ([]byte, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir())
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.Replace = true
	kv, err := common.ParseKubeVersion("v1.37.1")
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	install.APIVersions = common.VersionSet{"monitoring.coreos.com/v1"}
	rel, err := install.Run(chrt, values)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("unexpected release type %T", rel)
	}
	return []byte(r.Manifest), nil
}

// mustRender renders the chart into releaseNamespace and parses the objects.
func mustRender(t testing.TB, values map[string]any) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	out, err := renderChart(t, releaseNamespace, values)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return out, parseObjects(t, out)
}

// kustomize renders config/<dir> with kustomize's Go API, as `kubectl kustomize` does.
func kustomize(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(env.Root, "config", dir))
	if err != nil {
		t.Fatalf("kustomize config/%s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return parseObjects(t, out)
}

func readFile(t testing.TB, parts ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{env.Root}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// values builds a nested values map from dotted keys: values("a.b", 1) is {a: {b: 1}}.
func values(kv ...any) map[string]any {
	root := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		keys := strings.Split(kv[i].(string), ".")
		m := root
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = kv[i+1]
	}
	return root
}
