package manifests_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kommo-operator/kommo-operator/test/testenv"
)

const (
	// namespace is where config/default installs the operator.
	namespace = "kommo-operator-system"
	// image is what config/default's `images:` entry makes of the `kommo-operator` image.
	image = "ghcr.io/kommo-operator/kommo-operator:latest"
	// fieldManager applies the manifests in these tests.
	fieldManager = "kommo-operator-manifests-test"

	controllerName = "kommo-operator-controller"
	webhookName    = "kommo-operator-webhook"
)

var (
	env *testenv.Env
	// tmpDir holds the kubeconfig, kubectl's cache and the copy of config/.
	tmpDir string
	// configDir is a copy of the repository's config/ that the tests render, so that a missing
	// generated role can be stood in for without touching the repository.
	configDir string
	// placeholder records which generated ClusterRoles ("controller", "webhook") did not exist
	// in the repository and were replaced by an empty one in configDir.
	placeholder = map[string]bool{}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if tmpDir, err = os.MkdirTemp("", "kommo-manifests-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpDir)
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if err := env.Kubeconfig(filepath.Join(tmpDir, "kubeconfig")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := copyConfig(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// copyConfig copies config/ to configDir and stands in an empty ClusterRole for each role that
// `make manifests` generates but that does not exist yet.
func copyConfig() error {
	configDir = filepath.Join(tmpDir, "config")
	if err := copyTree(filepath.Join(env.Root, "config"), configDir); err != nil {
		return err
	}
	for _, half := range []string{"controller", "webhook"} {
		path := filepath.Join(configDir, "rbac", half, "role.yaml")
		if _, err := os.Stat(path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		placeholder[half] = true
		fmt.Fprintf(os.Stderr, "config/rbac/%s/role.yaml is missing (run `make manifests`): rendering with an empty ClusterRole\n", half)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		role := fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: kommo-operator-%s\nrules: []\n", half)
		if err := os.WriteFile(path, []byte(role), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// requireGeneratedRole skips the test when the generated ClusterRole of half ("controller" or
// "webhook") was missing from the repository.
func requireGeneratedRole(t *testing.T, half string) {
	t.Helper()
	if placeholder[half] {
		t.Skipf("generated role missing: config/rbac/%s/role.yaml does not exist yet (run `make manifests`)", half)
	}
}

// kubectl runs the kubectl built beside the API server as its administrator and returns its
// standard output and standard error.
func kubectl(stdin []byte, args ...string) (string, string, error) {
	args = append([]string{
		"--kubeconfig", filepath.Join(tmpDir, "kubeconfig"),
		"--cache-dir", filepath.Join(tmpDir, "kube-cache"),
	}, args...)
	cmd := exec.Command(env.Kubectl(), args...)
	cmd.Env = append(os.Environ(), "HOME="+tmpDir, "KUBECONFIG=")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args[4:], " "), err, stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// object is one rendered manifest.
type object struct {
	*unstructured.Unstructured
	// raw is the document as rendered, for strict decoding into a typed object.
	raw []byte
}

// id names an object in messages: Kind/namespace/name.
func (o object) id() string {
	if ns := o.GetNamespace(); ns != "" {
		return o.GetKind() + "/" + ns + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// decode decodes the object into a typed one, failing on any field the type does not know
// (a misspelt securityContext field would otherwise be silently dropped).
func (o object) decode(t testing.TB, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(o.raw, into); err != nil {
		t.Fatalf("%s: %v", o.id(), err)
	}
}

// render runs `kubectl kustomize` on dir (relative to the copy of config/) and returns the
// output and its objects.
func render(t testing.TB, dir string) ([]byte, []object) {
	t.Helper()
	out, _, err := kubectl(nil, "kustomize", filepath.Join(configDir, dir))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseObjects([]byte(out))
	if err != nil {
		t.Fatalf("config/%s: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("config/%s renders no objects", dir)
	}
	return []byte(out), objs
}

// parseObjects splits a multi-document YAML stream and decodes every document.
func parseObjects(data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		if u.Object == nil {
			continue
		}
		if u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("a document without kind or name:\n%s", doc)
		}
		objs = append(objs, object{Unstructured: u, raw: doc})
	}
}

// find returns the object of kind and name, failing when there is none.
func find(t testing.TB, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q in the rendered manifests", kind, name)
	return object{}
}

// marshalObjects renders objects back into one multi-document YAML stream.
func marshalObjects(t testing.TB, objs []object) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		b.WriteString("---\n")
		b.Write(o.raw)
		if !bytes.HasSuffix(o.raw, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// ensureNamespace creates the operator's namespace for real, from the rendered manifests, so
// that namespaced objects can be dry-run into it (a dry-run Namespace does not exist for the
// objects after it).
func ensureNamespace(t testing.TB, objs []object) {
	t.Helper()
	ns := find(t, objs, "Namespace", namespace)
	if _, _, err := kubectl(marshalObjects(t, []object{ns}), "apply", "--server-side", "--field-manager", fieldManager, "-f", "-"); err != nil {
		t.Fatal(err)
	}
}
