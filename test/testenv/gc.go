package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// gcStartTimeout bounds how long kube-controller-manager may take until its garbage
// collector has collected a first object; generous for a loaded two-core machine.
const gcStartTimeout = 90 * time.Second

// garbageCollector is kube-controller-manager running only its garbage collector.
type garbageCollector struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed once the process has been reaped
	err  error         // its exit status, valid after done
}

// GarbageCollector makes sure kube-controller-manager's garbage collector runs beside the
// API server, so that ownerReferences are honoured as in a cluster. The first call starts
// it (and waits until it has collected a probe object); it runs until Stop, or until the
// test process ends. A test that relies on garbage collection calls this first.
func (e *Env) GarbageCollector(t testing.TB) {
	t.Helper()
	if err := e.StartGarbageCollector(); err != nil {
		t.Fatalf("starting the garbage collector: %v", err)
	}
}

// StartGarbageCollector is GarbageCollector for callers without a test: it starts
// kube-controller-manager once per Env and returns when its garbage collector works.
func (e *Env) StartGarbageCollector() error {
	e.gcMu.Lock()
	defer e.gcMu.Unlock()
	if e.gc != nil {
		select {
		case <-e.gc.done:
			return fmt.Errorf("kube-controller-manager exited: %v; log %s:\n%s", e.gc.err, e.gc.log(), Tail(e.gc.log(), 30))
		default:
			return nil
		}
	}
	bin := filepath.Join(e.env.BinaryAssetsDirectory, "kube-controller-manager")
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return fmt.Errorf("no kube-controller-manager in %s: run `make envtest`", e.env.BinaryAssetsDirectory)
	}
	dir, err := os.MkdirTemp("", "testenv-kcm-")
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := e.Kubeconfig(kubeconfig); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("writing its kubeconfig: %w", err)
	}
	gc, err := startGarbageCollector(bin, dir, []string{
		"--kubeconfig=" + kubeconfig,
		// Only the garbage collector; it needs no other controller. The kubeconfig's
		// administrator acts for it: there is no token controller to mint its own.
		"--controllers=garbagecollector",
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0", // no HTTPS endpoint: readiness is proven by collecting an object
		"--concurrent-gc-syncs=5",
		"--v=1",
	})
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := e.probeGarbageCollection(gc); err != nil {
		gc.stop()
		return err
	}
	e.gc = gc
	return nil
}

// startGarbageCollector starts the process from a goroutine locked to its OS thread: the
// child gets SIGKILL when that thread ends (Pdeathsig on Linux), and the thread lives as
// long as the test process does, or until the child is reaped.
func startGarbageCollector(bin, dir string, args []string) (*garbageCollector, error) {
	logFile, err := os.Create(filepath.Join(dir, "kube-controller-manager.log"))
	if err != nil {
		return nil, err
	}
	gc := &garbageCollector{dir: dir, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer logFile.Close()
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = dieWithParent()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("starting kube-controller-manager: %w", err)
			return
		}
		gc.cmd = cmd
		started <- nil
		gc.err = cmd.Wait()
		close(gc.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return gc, nil
}

// probeGarbageCollection deletes an owner ConfigMap and waits until the garbage collector
// has deleted its dependent: only then do the tests' ownerReferences count.
func (e *Env) probeGarbageCollection(gc *garbageCollector) error {
	ctx, cancel := context.WithTimeout(context.Background(), gcStartTimeout)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "testenv-gc-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return err
	}
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns.Name}}
	if err := e.Client.Create(ctx, owner); err != nil {
		return err
	}
	dependent := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "dependent", Namespace: ns.Name,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
	}}
	if err := e.Client.Create(ctx, dependent); err != nil {
		return err
	}
	if err := e.Client.Delete(ctx, owner); err != nil {
		return err
	}
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-gc.done:
			return false, fmt.Errorf("kube-controller-manager exited: %v", gc.err)
		default:
		}
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(dependent), &corev1.ConfigMap{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("the garbage collector did not collect a probe object within %s: %w; log %s:\n%s",
			gcStartTimeout, err, gc.log(), Tail(gc.log(), 30))
	}
	return nil
}

// stop ends the process (SIGTERM, then SIGKILL) and removes its directory.
func (gc *garbageCollector) stop() {
	if gc.cmd != nil && gc.cmd.Process != nil {
		_ = gc.cmd.Process.Signal(os.Interrupt)
		select {
		case <-gc.done:
		case <-time.After(5 * time.Second):
			_ = gc.cmd.Process.Kill()
			<-gc.done
		}
	}
	os.RemoveAll(gc.dir)
}

func (gc *garbageCollector) log() string { return filepath.Join(gc.dir, "kube-controller-manager.log") }

// Tail returns the last n lines of the file at path (a log), or why it cannot be read.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
