// Command demo runs kommo-operator locally, the way a cluster runs it, and walks one
// Kommo account through its life the way Kommo drives it: install, (with --sources) a
// source declared on the integration and created in the account, a forced token refresh,
// a reinstall, a revoke; then it scans the operator's logs for every code, token
// and secret it saw. It is `make demo`: exit 0 when every step reached its expected state
// within its deadline, non-zero with the step and what was seen otherwise.
//
// With --keep-running (`make dev`) it runs the same steps, revoke included, then keeps
// everything running and prints a kubeconfig, kubectl and ready-to-paste curl lines that
// install (or revoke) any account by hand; installing the demo's revoked account again
// shows it recover. Replicas that end are started again, as a Deployment would. With
// --controllers=2 (`make dev REPLICAS=2`) two leader-elected controllers run: kill the
// leader (the PIDs are printed) and watch the other take over. Ctrl-C stops everything.
//
// Everything is real but Kommo: a kube-apiserver and etcd (hack/envtest), the RBAC of
// config/rbac (each process with a token of its ServiceAccount), bin/kommo-operator as two
// processes (controller and webhook), and the Kommo simulator (hack/kommosim) as a third;
// see test/e2e/stack, which the end-to-end tests share. Installs and revocations reach
// the webhook over HTTP as Kommo sends them. All of it listens on 127.0.0.1 only;
// kubeconfigs and logs go to bin/demo/. No code, token or secret is printed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

func main() {
	root, err := testenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	keep := flag.Bool("keep-running", false, "after the steps, keep everything running until Ctrl-C (make dev)")
	operator := flag.String("operator", filepath.Join(root, "bin", "kommo-operator"), "the kommo-operator binary (make build)")
	simulator := flag.String("simulator", filepath.Join(root, "bin", "kommosim"), "the Kommo simulator binary (make build-sim)")
	dir := flag.String("dir", filepath.Join(root, "bin", "demo"), "where kubeconfigs and logs go")
	account := flag.String("account", "acme.kommo.com", "the Kommo account host that installs the integration")
	controllers := flag.Int("controllers", 1, "controller replicas, leader-elected (make dev REPLICAS=2)")
	sources := flag.Bool("sources", true, "after the install, declare a source on the KommoIntegration and wait until the installation's status.sources has it")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, *keep, stack.Options{
		Binaries:  stack.Binaries{Operator: *operator, Simulator: *simulator},
		Dir:       *dir,
		Namespace: "demo",
		Logf:      func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) },
		// make dev keeps replicas running as a Deployment would; make demo fails on a crash.
		ControllerReplicas: *controllers,
		Supervise:          *keep,
	}, *account, *sources))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

// run brings the stack up, runs the steps, and always stops everything. It returns the
// exit code.
func run(ctx context.Context, keep bool, opts stack.Options, account string, sources bool) int {
	began := time.Now()
	fmt.Println("kommo-operator demo: starting a control plane, the Kommo simulator, the controller and the webhook")
	st, err := stack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nFAILED to start: %v\n", err)
		return exitCode(ctx)
	}
	defer func() {
		fmt.Println("stopping the webhook, the controller, the simulator and the control plane")
		start := time.Now()
		if err := st.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			return
		}
		fmt.Printf("  stopped in %s\n", time.Since(start).Round(10*time.Millisecond))
	}()
	fmt.Printf("  admin kubeconfig: %s\n  logs: %s\n", st.AdminKubeconfig, st.Dir)

	d := &demo{st: st, account: account}
	type step struct {
		name string
		fn   func(context.Context) error
	}
	steps := []step{{"install", d.install}}
	if sources {
		steps = append(steps, step{"sources", d.sources})
	}
	steps = append(steps, []step{
		{"forced refresh", d.refresh},
		{"reinstall", d.reinstall},
		{"revoke", d.revoke},
		{"log scan", d.leakScan},
	}...)
	for i, step := range steps {
		fmt.Printf("\n[%d/%d] %s\n", i+1, len(steps), step.name)
		start := time.Now()
		if err := step.fn(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "\nFAILED at step %d (%s) after %s: %v\n", i+1, step.name, time.Since(start).Round(time.Millisecond), st.Redact(err.Error()))
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "\nlast lines of the logs (secrets redacted):\n%s", st.LogTails(15))
			}
			return exitCode(ctx)
		}
		fmt.Printf("  done in %s\n", time.Since(start).Round(time.Millisecond))
	}
	fmt.Printf("\nevery step reached its expected state; %s in all\n", time.Since(began).Round(100*time.Millisecond))
	if !keep {
		return 0
	}
	return d.keepRunning(ctx)
}

func exitCode(ctx context.Context) int {
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "interrupted")
		return 130
	}
	return 1
}

type demo struct {
	st      *stack.Stack
	account string

	installedAt  *metav1.MicroTime
	refreshPrint string
}

func (d *demo) kubectlGet(ctx context.Context) error {
	out, err := d.st.KubectlGet(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("  $ kubectl get kommoinstallations -n %s -o wide\n", d.st.Namespace)
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Println("  " + line)
	}
	return nil
}

// install: Kommo sends the redirect; the installation becomes Ready with the scope_id the
// simulator's Chats API returned.
func (d *demo) install(ctx context.Context) error {
	fmt.Printf("  Kommo: %s installs the integration (code from the simulator, redirect to the webhook)\n", d.account)
	if err := d.st.Install(ctx, d.account); err != nil {
		return err
	}
	inst, err := d.st.WaitReady(ctx, d.account)
	if err != nil {
		return err
	}
	conn, err := d.st.SimConnection(ctx, d.account)
	if err != nil {
		return err
	}
	if !conn.Connected || inst.Status.ScopeID != conn.ScopeID {
		return fmt.Errorf("status.scopeID %q, the simulator's connection %+v", inst.Status.ScopeID, conn)
	}
	secret, err := d.st.TokenSecret(ctx, d.account)
	if err != nil {
		return err
	}
	if secret == nil {
		return errors.New("Ready, but no token Secret " + d.st.TokenSecretName(d.account))
	}
	d.installedAt = inst.Status.InstalledAt
	d.refreshPrint = fingerprint(secret.Data[kommov1.TokenKeyRefreshToken])
	fmt.Printf("  Ready; channel connected, scope_id %s (as the simulator's Chats API has it)\n", conn.ScopeID)
	fmt.Printf("  token Secret %s: keys %s\n", secret.Name, keys(secret.Data))
	return d.kubectlGet(ctx)
}

// demoSource is the source the sources step declares on the KommoIntegration.
var demoSource = kommov1.Source{ExternalID: "demo-chat", Name: "Demo chat"}

// sources: a source declared once on the KommoIntegration is created in the account and
// recorded in the installation's status.sources.
func (d *demo) sources(ctx context.Context) error {
	patch := fmt.Sprintf(`{"spec":{"sources":[{"externalID":%q,"name":%q}]}}`, demoSource.ExternalID, demoSource.Name)
	integration := &kommov1.KommoIntegration{}
	integration.Name, integration.Namespace = d.st.Integration, d.st.Namespace
	if err := d.st.Client.Patch(ctx, integration, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return err
	}
	fmt.Printf("  $ kubectl patch kint %s --type=merge -p '%s'\n", d.st.Integration, patch)
	inst, err := d.st.WaitInstallation(ctx, d.account, "status.sources with "+demoSource.ExternalID, func(inst *kommov1.KommoInstallation) (bool, string) {
		for _, s := range inst.Status.Sources {
			if s.ExternalID == demoSource.ExternalID && s.ID != 0 {
				return true, ""
			}
		}
		c := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionSourcesSynced)
		return false, fmt.Sprintf("status.sources %+v, %s %+v", inst.Status.Sources, kommov1.ConditionSourcesSynced, c)
	})
	if err != nil {
		return err
	}
	var got kommov1.SourceStatus
	for _, s := range inst.Status.Sources {
		if s.ExternalID == demoSource.ExternalID {
			got = s
		}
	}
	inKommo, err := d.st.SimSources(ctx, d.account)
	if err != nil {
		return err
	}
	for _, s := range inKommo {
		if s.ID == got.ID && strings.EqualFold(s.ExternalID, demoSource.ExternalID) && s.Name == demoSource.Name {
			fmt.Printf("  status.sources: %s → Kommo source %d in pipeline %d (%s); the simulator's Sources API has it\n",
				got.ExternalID, got.ID, got.PipelineID, got.Ownership)
			return d.kubectlGet(ctx)
		}
	}
	return fmt.Errorf("status.sources records %+v, the simulator has %+v", got, inKommo)
}

// refresh: the refresh-requested-at annotation makes the controller refresh now; the new
// pair lands in the token Secret.
func (d *demo) refresh(ctx context.Context) error {
	at, err := d.st.RequestRefresh(ctx, d.account)
	if err != nil {
		return err
	}
	fmt.Printf("  $ kubectl annotate kinst %s %s=%s\n", d.st.InstallationName(d.account), kommov1.AnnotationRefreshRequestedAt, at)
	inst, err := d.st.WaitInstallation(ctx, d.account, "lastRefreshTime set and Ready", func(inst *kommov1.KommoInstallation) (bool, string) {
		return inst.Status.LastRefreshTime != nil && isReady(inst), fmt.Sprintf("lastRefreshTime %v, %s", inst.Status.LastRefreshTime, readySummary(inst))
	})
	if err != nil {
		return err
	}
	var now string
	err = stack.Poll(ctx, stack.Deadline, "a new refresh token in the token Secret", func(ctx context.Context) (bool, string, error) {
		secret, err := d.st.TokenSecret(ctx, d.account)
		if err != nil || secret == nil {
			return false, fmt.Sprintf("token Secret %v (%v)", secret != nil, err), nil
		}
		now = fingerprint(secret.Data[kommov1.TokenKeyRefreshToken])
		return now != d.refreshPrint, "the same refresh token", nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("  refreshed at %s; next planned refresh %s\n", inst.Status.LastRefreshTime.UTC().Format(time.RFC3339), inst.Status.RefreshTime.UTC().Format(time.RFC3339))
	fmt.Printf("  refresh token in the Secret rotated: sha256 %s… → %s… (Kommo's refresh tokens are single-use)\n", d.refreshPrint, now)
	d.refreshPrint = now
	return d.kubectlGet(ctx)
}

// reinstall: a new install of the same account is exchanged again and the channel
// reconnected.
func (d *demo) reinstall(ctx context.Context) error {
	calls, err := d.st.SimCalls(ctx)
	if err != nil {
		return err
	}
	connects := stack.CountCalls(calls, "connect", "")
	fmt.Printf("  Kommo: %s installs the integration again (a new code)\n", d.account)
	if err := d.st.Install(ctx, d.account); err != nil {
		return err
	}
	inst, err := d.st.WaitInstallation(ctx, d.account, "installedAt advanced and Ready", func(inst *kommov1.KommoInstallation) (bool, string) {
		at := inst.Status.InstalledAt
		return at != nil && at.After(d.installedAt.Time) && isReady(inst),
			fmt.Sprintf("installedAt %v (was %v), %s", at, d.installedAt, readySummary(inst))
	})
	if err != nil {
		return err
	}
	calls, err = d.st.SimCalls(ctx)
	if err != nil {
		return err
	}
	conn, err := d.st.SimConnection(ctx, d.account)
	if err != nil {
		return err
	}
	if n := stack.CountCalls(calls, "connect", ""); n <= connects || !conn.Connected || conn.ScopeID != inst.Status.ScopeID {
		return fmt.Errorf("not reconnected: %d connects before, %d after; simulator %+v, status.scopeID %q", connects, n, conn, inst.Status.ScopeID)
	}
	if _, err := d.st.TokenSecret(ctx, d.account); err != nil {
		return err
	}
	fmt.Printf("  installedAt %s → %s; the channel was connected again (connect #%d)\n",
		d.installedAt.UTC().Format(time.RFC3339Nano), inst.Status.InstalledAt.UTC().Format(time.RFC3339Nano), stack.CountCalls(calls, "connect", ""))
	d.installedAt = inst.Status.InstalledAt
	return d.kubectlGet(ctx)
}

// revoke: Kommo's signed "access revoked" hook; the tokens go, Ready=False Revoked.
func (d *demo) revoke(ctx context.Context) error {
	fmt.Printf("  Kommo: %s disables the integration; Kommo sends the signed \"access revoked\" hook\n", d.account)
	if err := d.st.Revoke(ctx, d.account); err != nil {
		return err
	}
	if _, err := d.st.WaitCondition(ctx, d.account, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonRevoked); err != nil {
		return err
	}
	err := stack.Poll(ctx, stack.Deadline, "the token Secret deleted", func(ctx context.Context) (bool, string, error) {
		secret, err := d.st.TokenSecret(ctx, d.account)
		if err != nil {
			return false, err.Error(), nil
		}
		return secret == nil, "it still exists", nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("  Ready=False (Revoked); token Secret %s deleted\n", d.st.TokenSecretName(d.account))
	return d.kubectlGet(ctx)
}

// leakScan: no code, token or secret in what the controller and the webhook logged, and
// no request of theirs refused by RBAC.
func (d *demo) leakScan(ctx context.Context) error {
	leaks, scanned, err := d.st.ScanLogs(ctx)
	if err != nil {
		return err
	}
	if len(leaks) > 0 {
		var b strings.Builder
		for _, l := range leaks {
			b.WriteString("\n  " + l.String())
		}
		return fmt.Errorf("secrets in the logs:%s", b.String())
	}
	denials, err := d.st.Denials()
	if err != nil {
		return err
	}
	if len(denials) > 0 {
		return fmt.Errorf("the API server refused requests of the operator (the RBAC of config/rbac is not enough):\n  %s", strings.Join(denials, "\n  "))
	}
	fmt.Printf("  none of the %d codes, tokens, signatures and secrets seen appears in the controller's and webhook's logs (%d KiB, debug level);\n"+
		"  no request of either was refused by the API server's RBAC\n", len(d.st.Secrets(ctx)), scanned/1024)
	return nil
}

// keepRunning prints how to use the running stack and waits for Ctrl-C.
func (d *demo) keepRunning(ctx context.Context) int {
	st := d.st
	codeURL := st.SimURL + "/_sim/code?" + url.Values{"client_id": {st.ClientID}}.Encode() + "&account=$ACCOUNT"
	revokeURL := st.SimURL + "/_sim/revoke?" + url.Values{"client_id": {st.ClientID}}.Encode() + "&account=$ACCOUNT"
	redirect := st.WebhookURL + "/kommo/" + st.Namespace + "/" + st.Integration + "/redirect"
	revoke := st.WebhookURL + "/kommo/" + st.Namespace + "/" + st.Integration + "/revoke"
	fmt.Printf(`
Everything keeps running; Ctrl-C stops it. %s ends revoked: install it again to see it recover.

  export KUBECONFIG=%s
  export PATH=%s:$PATH    # kubectl built beside the API server
  kubectl get kinst -A -o wide

Install an account as Kommo would (a code from the simulator, then the redirect to the webhook):

  ACCOUNT=globex.kommo.com
  curl -sG '%s' -d referer=$ACCOUNT -d from_widget=1 --data-urlencode "code=$(curl -s -X POST "%s")"

Disable the integration in that account (Kommo's signed "access revoked" hook):

  curl -s "%s?$(curl -s -X POST "%s")"

Logs: %s
  (%s, kommosim.log; the simulator's call log: curl -s %s/_sim/calls)
`, d.account, st.AdminKubeconfig, filepath.Dir(st.Kubectl), redirect, codeURL, revoke, revokeURL, st.Dir, logNames(st), st.SimURL)
	if len(st.Controllers) > 1 {
		fmt.Println("\nControllers, leader-elected on Lease " + stack.SystemNamespace + "/" + stack.LeaseName + " (kill the leader; the other takes over):")
		for _, c := range st.Controllers {
			role := "standby"
			if c.IsLeader(ctx) {
				role = "leader"
			}
			fmt.Printf("  %s: pid %d, %s\n", c.Name, c.PID(), role)
		}
	}

	// Watch for a crash while waiting; the ticker only paces that check.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Println()
			return 0
		case <-tick.C:
			if err := st.Crashed(); err != nil {
				fmt.Fprintf(os.Stderr, "\n%v\n%s", err, st.LogTails(15))
				return 1
			}
		}
	}
}

func logNames(st *stack.Stack) string {
	var names []string
	for _, r := range append(slices.Clone(st.Controllers), st.Webhooks...) {
		names = append(names, filepath.Base(r.LogPath))
	}
	return strings.Join(names, ", ")
}

func isReady(inst *kommov1.KommoInstallation) bool {
	c := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == inst.Generation
}

func readySummary(inst *kommov1.KommoInstallation) string {
	c := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionReady)
	if c == nil {
		return "no Ready condition"
	}
	return fmt.Sprintf("Ready=%s (%s) %q", c.Status, c.Reason, c.Message)
}

// fingerprint identifies a token without revealing it.
func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

func keys(m map[string][]byte) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
