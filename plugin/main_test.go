package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kommo-operator/kommo-operator/test/testenv"
)

var (
	env        *testenv.Env
	kubeconfig string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubectl-kommo-")
	if err != nil {
		panic(err)
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	code := func() int {
		defer os.RemoveAll(dir)
		e, err := testenv.Start()
		if err != nil {
			panic(err)
		}
		env = e
		defer func() { _ = env.Stop() }()
		if err := env.Kubeconfig(kubeconfig); err != nil {
			panic(err)
		}
		return m.Run()
	}()
	os.Exit(code)
}

// testNow is the plugin's clock in tests.
var testNow = time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)

// run runs `kubectl kommo args...` against the test API server as its administrator, with the
// kubeconfig file and -n flag a user would pass.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o := &options{
		IOStreams: genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut},
		flags:     genericclioptions.NewConfigFlags(false),
		now:       func() time.Time { return testNow },
	}
	cmd := newRootCommand(o)
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(context.Background())
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}
