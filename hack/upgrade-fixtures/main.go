// Command upgrade-fixtures captures the upgrade fixtures (test/upgrade/testdata) from a
// released operator: it runs that release's controller and webhook as processes against a
// local control plane (with the release's CRDs) and the Kommo simulator, drives one
// installation into each state of fixture.Cases the way Kommo and people would, stops
// both processes, and writes the objects as the release left them and the simulator's
// state. hack/upgrade-fixtures.sh builds a release and runs this (`make upgrade-fixtures`).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
	"github.com/kommo-operator/kommo-operator/test/testenv"
	"github.com/kommo-operator/kommo-operator/test/upgrade/fixture"
)

// deadline bounds every wait; generous for a loaded two-core machine.
const deadline = 90 * time.Second

func main() {
	binary := flag.String("binary", "", "the released kommo-operator binary")
	crds := flag.String("crds", "", "the release's config/crd/bases")
	release := flag.String("release", "", "the release's commit, recorded in the fixtures")
	out := flag.String("out", "test/upgrade/testdata", "where to write the fixtures")
	work := flag.String("work", "", "directory for kubeconfigs and logs (default: a temporary one)")
	flag.Parse()
	if *binary == "" || *crds == "" || *release == "" {
		log.Fatal("upgrade-fixtures: --binary, --crds and --release are required")
	}
	if err := run(*binary, *crds, *release, *out, *work); err != nil {
		log.Fatalf("upgrade-fixtures: %v", err)
	}
}

type capture struct {
	env     *testenv.Env
	sim     *kommotest.Simulator
	simURL  string
	hookURL string
	meta    fixture.Meta
	procs   []*exec.Cmd
	logs    []string
}

func run(binary, crds, release, out, work string) (err error) {
	ctx := context.Background()
	if work == "" {
		if work, err = os.MkdirTemp("", "upgrade-fixtures-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	env, err := testenv.StartWith(testenv.Options{CRDDirectory: crds})
	if err != nil {
		return err
	}
	defer env.Stop()
	sim, srv := kommotest.NewServer(kommotest.Options{AutoAccounts: true, QPS: -1})
	defer srv.Close()
	c := &capture{env: env, sim: sim, simURL: srv.URL, meta: fixture.Meta{
		Release:       release,
		ClientID:      string(uuid.NewUUID()),
		ClientSecret:  "client-secret-" + stack.RandomHex(24),
		RedirectURI:   "https://kommo-hooks.example.com/kommo/" + fixture.Integration + "/redirect",
		ChannelID:     string(uuid.NewUUID()),
		ChannelSecret: stack.RandomHex(20),
	}}
	defer c.stopProcesses()
	defer func() {
		if err != nil {
			for _, l := range c.logs {
				data, _ := os.ReadFile(l)
				log.Printf("%s:\n%s", l, data)
			}
		}
	}()
	sim.AddIntegration(c.meta.ClientID, c.meta.ClientSecret, c.meta.RedirectURI)
	sim.AddChannel(c.meta.ChannelID, c.meta.ChannelSecret)
	sim.BindChannel(c.meta.ChannelID, c.meta.ClientID)

	kubeconfig := filepath.Join(work, "admin.kubeconfig")
	if err := env.Kubeconfig(kubeconfig); err != nil {
		return err
	}
	for _, cs := range fixture.Cases {
		if err := c.setUpCase(ctx, cs); err != nil {
			return fmt.Errorf("%s: %w", cs.Name, err)
		}
	}
	probe, err := stack.FreeAddr()
	if err != nil {
		return err
	}
	if err := c.start(ctx, binary, filepath.Join(work, "controller.log"), probe, "controller",
		"--kubeconfig", kubeconfig, "--kommo-endpoint", c.simURL, "--metrics-bind-address", "0",
		"--health-probe-bind-address", probe, "--zap-log-level", "debug"); err != nil {
		return err
	}
	bind, err := stack.FreeAddr()
	if err != nil {
		return err
	}
	if probe, err = stack.FreeAddr(); err != nil {
		return err
	}
	c.hookURL = "http://" + bind
	if err := c.start(ctx, binary, filepath.Join(work, "webhook.log"), probe, "webhook",
		"--kubeconfig", kubeconfig, "--bind-address", bind, "--metrics-bind-address", "0",
		"--health-probe-bind-address", probe, "--rate-limit", "0"); err != nil {
		return err
	}

	for _, cs := range fixture.Cases {
		log.Printf("capturing %s: %s", cs.Name, cs.Doc)
		if err := c.drive(ctx, cs.Name); err != nil {
			return fmt.Errorf("%s: %w", cs.Name, err)
		}
	}
	// Nothing may change between the dump and the simulator's export: the release stops
	// first, as it does in a rolling upgrade before the new controller takes over.
	if err := c.waitQuiet(ctx); err != nil {
		return err
	}
	c.stopProcesses()
	f := fixture.Fixtures{Meta: c.meta, Objects: map[string][]*unstructured.Unstructured{}}
	f.Meta.CapturedAt = time.Now().UTC().Truncate(time.Second)
	for _, cs := range fixture.Cases {
		if f.Objects[cs.Name], err = c.dump(ctx, cs.Name); err != nil {
			return err
		}
	}
	f.Kommo = sim.Export()
	if err := fixture.Write(out, f); err != nil {
		return err
	}
	log.Printf("wrote the fixtures of release %s to %s", release, out)
	return nil
}

// setUpCase creates the case's namespace, credentials Secret and KommoIntegration.
func (c *capture) setUpCase(ctx context.Context, cs fixture.Case) error {
	ns := cs.Name
	if err := c.env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := c.env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge-kommo", Namespace: ns},
		StringData: map[string]string{"client_secret": c.meta.ClientSecret, "channel_secret": c.meta.ChannelSecret},
	}); err != nil {
		return err
	}
	integration := &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: fixture.Integration, Namespace: ns},
		Spec: kommov1.KommoIntegrationSpec{
			ClientID:        c.meta.ClientID,
			ClientSecretRef: kommov1.SecretKeyRef{Name: "wa-bridge-kommo", Key: "client_secret"},
			RedirectURI:     c.meta.RedirectURI,
			AccountDomains:  []string{"kommo.com"},
		},
	}
	if cs.Chat {
		integration.Spec.Chat = &kommov1.ChatSpec{ChannelID: c.meta.ChannelID, SecretRef: kommov1.SecretKeyRef{Name: "wa-bridge-kommo", Key: "channel_secret"}}
	}
	return c.env.Client.Create(ctx, integration)
}

// drive brings the case's installation into its state, as Kommo and people would.
func (c *capture) drive(ctx context.Context, name string) error {
	host, inst := fixture.Host(name), fixture.Installation(name)
	if name == "long-lived" {
		tok, err := c.sim.IssueLongLivedToken(host, c.meta.ClientID, 5*365*24*time.Hour)
		if err != nil {
			return err
		}
		if err := c.env.Client.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge-long-lived", Namespace: name},
			StringData: map[string]string{"token": tok},
		}); err != nil {
			return err
		}
		if err := c.env.Client.Create(ctx, &kommov1.KommoInstallation{
			ObjectMeta: metav1.ObjectMeta{Name: inst, Namespace: name},
			Spec: kommov1.KommoInstallationSpec{
				IntegrationRef: kommov1.LocalObjectReference{Name: fixture.Integration}, AccountDomain: host,
				LongLivedTokenSecretRef: &kommov1.SecretKeyRef{Name: "wa-bridge-long-lived", Key: "token"},
			},
		}); err != nil {
			return err
		}
		return c.waitReady(ctx, name, metav1.ConditionTrue, kommov1.ReasonReady)
	}

	if err := c.redirect(ctx, name, c.sim.IssueCode(host, c.meta.ClientID)); err != nil {
		return err
	}
	if err := c.waitReady(ctx, name, metav1.ConditionTrue, kommov1.ReasonReady); err != nil {
		return err
	}
	switch name {
	case "failed-attempt":
		// A reinstall whose code Kommo does not know (a forged or stale redirect).
		if err := c.redirect(ctx, name, "def50200"+stack.RandomHex(200)); err != nil {
			return err
		}
		return c.waitReady(ctx, name, metav1.ConditionFalse, kommov1.ReasonInvalidCode)
	case "revoked":
		q := c.sim.RevokeAccess(host, c.meta.ClientID)
		if err := c.get(ctx, c.hookURL+"/kommo/"+name+"/"+fixture.Integration+"/revoke?"+q.Encode()); err != nil {
			return err
		}
		return c.waitReady(ctx, name, metav1.ConditionFalse, kommov1.ReasonRevoked)
	case "invalid-client":
		// Someone puts a wrong client secret into the cluster; the next refresh fails.
		secret := &corev1.Secret{}
		if err := c.env.Client.Get(ctx, client.ObjectKey{Namespace: name, Name: "wa-bridge-kommo"}, secret); err != nil {
			return err
		}
		secret.Data["client_secret"] = []byte("client-secret-wrong-" + stack.RandomHex(8))
		if err := c.env.Client.Update(ctx, secret); err != nil {
			return err
		}
		obj := &kommov1.KommoInstallation{ObjectMeta: metav1.ObjectMeta{Name: inst, Namespace: name}}
		at := time.Now().Add(time.Second).UTC().Format(time.RFC3339)
		patch := []byte(`{"metadata":{"annotations":{"` + kommov1.AnnotationRefreshRequestedAt + `":"` + at + `"}}}`)
		if err := c.env.Client.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", patch)); err != nil {
			return err
		}
		return c.waitReady(ctx, name, metav1.ConditionFalse, kommov1.ReasonInvalidClient)
	}
	return nil
}

// redirect sends Kommo's install redirect to the webhook.
func (c *capture) redirect(ctx context.Context, ns, code string) error {
	q := url.Values{"code": {code}, "referer": {fixture.Host(ns)}, "from_widget": {"1"}}
	return c.get(ctx, c.hookURL+"/kommo/"+ns+"/"+fixture.Integration+"/redirect?"+q.Encode())
}

func (c *capture) get(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %d: %s", resp.StatusCode, body)
	}
	return nil
}

// waitReady waits until the case's installation is Ready=status with reason.
func (c *capture) waitReady(ctx context.Context, ns string, status metav1.ConditionStatus, reason string) error {
	return stack.Poll(ctx, deadline, "Ready="+string(status)+"/"+reason, func(ctx context.Context) (bool, string, error) {
		inst := &kommov1.KommoInstallation{}
		if err := c.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: fixture.Installation(ns)}, inst); err != nil {
			return false, "", client.IgnoreNotFound(err)
		}
		cond := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionReady)
		if cond == nil {
			return false, "no Ready condition", nil
		}
		return cond.Status == status && cond.Reason == reason, fmt.Sprintf("%s/%s: %s", cond.Status, cond.Reason, cond.Message), nil
	})
}

// waitQuiet waits until neither the objects nor the simulator's call log have changed
// for two seconds: the release has finished what it was doing.
func (c *capture) waitQuiet(ctx context.Context) error {
	fingerprint := func() (string, error) {
		var b strings.Builder
		for _, cs := range fixture.Cases {
			for _, list := range []client.ObjectList{&kommov1.KommoInstallationList{}, &corev1.SecretList{}} {
				if err := c.env.Client.List(ctx, list, client.InNamespace(cs.Name)); err != nil {
					return "", err
				}
				_ = meta.EachListItem(list, func(o runtime.Object) error {
					if m, err := meta.Accessor(o); err == nil {
						b.WriteString(m.GetResourceVersion() + ",")
					}
					return nil
				})
			}
		}
		fmt.Fprintf(&b, "calls=%d", len(c.sim.Calls()))
		return b.String(), nil
	}
	prev, since := "", time.Now()
	return stack.Poll(ctx, deadline, "the release to be idle", func(context.Context) (bool, string, error) {
		fp, err := fingerprint()
		if err != nil {
			return false, "", err
		}
		if fp != prev {
			prev, since = fp, time.Now()
		}
		return time.Since(since) >= 2*time.Second, fp, nil
	})
}

// dump lists the case's objects without server-set metadata.
func (c *capture) dump(ctx context.Context, ns string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, gvk := range []schema.GroupVersionKind{
		kommov1.GroupVersion.WithKind("KommoIntegration"),
		corev1.SchemeGroupVersion.WithKind("Secret"),
		kommov1.GroupVersion.WithKind("KommoInstallation"),
	} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for i := range list.Items {
			obj := &list.Items[i]
			obj.SetGroupVersionKind(gvk)
			for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink"} {
				unstructured.RemoveNestedField(obj.Object, "metadata", f)
			}
			out = append(out, obj)
		}
	}
	return out, nil
}

// start runs the release binary with args and waits for its /readyz.
func (c *capture) start(ctx context.Context, binary, logPath, probe string, args ...string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "KUBECONFIG=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.procs = append(c.procs, cmd)
	c.logs = append(c.logs, logPath)
	return stack.Poll(ctx, deadline, args[0]+" ready", func(context.Context) (bool, string, error) {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})
}

// stopProcesses ends the release's processes (SIGTERM, SIGKILL after 15 s).
func (c *capture) stopProcesses() {
	for _, cmd := range c.procs {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	c.procs = nil
}
