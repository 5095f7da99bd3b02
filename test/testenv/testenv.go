// Package testenv starts a real kube-apiserver and etcd (controller-runtime's envtest) with
// the operator's CRDs installed. Every suite that touches Kubernetes uses it; the binaries
// come from hack/envtest (`make envtest`).
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is an uncached client with Scheme.
	Client client.Client
	// Scheme knows the built-in kinds and the operator's.
	Scheme *runtime.Scheme
	// Root is the repository root.
	Root string

	env     *envtest.Environment
	certDir string

	gcMu sync.Mutex
	gc   *garbageCollector
}

// Options configure StartWith; the zero value is Start.
type Options struct {
	// CRDDirectory holds the CRDs to install; default config/crd/bases of this tree.
	CRDDirectory string
	// GarbageCollector starts kube-controller-manager's garbage collector with the
	// control plane (see Env.GarbageCollector, which starts it on first use instead).
	GarbageCollector bool
}

// NewScheme returns a scheme with the built-in kinds and the operator's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := kommov1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Start starts kube-apiserver and etcd with the CRDs from config/crd/bases installed.
// Call Stop when done, usually from TestMain.
func Start() (*Env, error) { return StartWith(Options{}) }

// StartWith is Start with options.
func StartWith(o Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir(root)
	if err != nil {
		return nil, err
	}
	crds := o.CRDDirectory
	if crds == "" {
		crds = filepath.Join(root, "config", "crd", "bases")
	}
	// The API server's certificates live in a directory of ours, not envtest's, so that
	// StartAPIServer brings it back with the same ones.
	certDir, err := os.MkdirTemp("", "testenv-apiserver-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crds},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(certDir)
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	scheme := NewScheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(certDir)
		return nil, err
	}
	e := &Env{Config: cfg, Client: c, Scheme: scheme, Root: root, env: env, certDir: certDir}
	if o.GarbageCollector {
		if err := e.StartGarbageCollector(); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	return e, nil
}

// Main is a test package's TestMain: it starts the control plane into *env, runs the
// tests and stops it.
func Main(m *testing.M, env **Env) { MainWith(m, env, Options{}) }

// MainWith is Main with options.
func MainWith(m *testing.M, env **Env, o Options) {
	e, err := StartWith(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

// Stop stops the garbage collector, if it runs, and the control plane.
func (e *Env) Stop() error {
	e.gcMu.Lock()
	if e.gc != nil {
		e.gc.stop()
		e.gc = nil
	}
	e.gcMu.Unlock()
	err := e.env.Stop()
	_ = os.RemoveAll(e.certDir)
	return err
}

// Kubeconfig writes a kubeconfig for an administrator of the control plane to path.
func (e *Env) Kubeconfig(path string) error {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "testenv-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Kubectl returns the path of the kubectl built beside the API server.
func (e *Env) Kubectl() string { return filepath.Join(e.env.BinaryAssetsDirectory, "kubectl") }

// Namespace creates a namespace with a generated name for one test and returns its name.
// envtest runs no namespace controller, so it is not deleted afterwards; names never clash.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// RepoRoot finds the repository root from this source file.
func RepoRoot() (string, error) {
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		return "", errors.New("testenv: cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir is KUBEBUILDER_ASSETS when set, else the newest bin/k8s/<version>/ that has
// kube-apiserver, etcd and kubectl.
func AssetsDir(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "*"))
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, dir := range dirs {
		if complete(dir) {
			return dir, nil
		}
	}
	return "", errors.New("testenv: no kube-apiserver in bin/k8s: run `make envtest` (or `make test`, which does)")
}

func complete(dir string) bool {
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}
