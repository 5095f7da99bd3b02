// Package e2e tests the real kommo-operator binary, built by the Makefile's own recipe, as
// separate processes (controller and webhook, each as its ServiceAccount with
// a token of it, with the RBAC of config/rbac) against a real kube-apiserver and etcd and
// the Kommo simulator process. Installs and revocations reach the webhook over HTTP as
// Kommo sends them. The stack (test/e2e/stack) is the one `make demo` runs.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/test/e2e/stack"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

var keep = flag.Bool("e2e.keep", false, "keep the binaries, kubeconfigs and logs (printed path) even when every test passes")

var (
	// rootCtx ends on SIGINT or SIGTERM: a build or start in progress gives up.
	rootCtx, cancelRoot = context.WithCancel(context.Background())

	stackMu   sync.Mutex // held while the stack starts or stops
	started   bool
	theStack  *stack.Stack
	startErr  error
	workDir   string
	lifecycle atomic.Bool // the lifecycle flow ran to its end
)

// TestMain stops the stack, if a test started it, and keeps its logs when a test failed.
// The stack starts on first use: `go test -run '^$' -bench .` builds and starts nothing.
// Ctrl-C (or SIGTERM) stops everything too, instead of leaving processes behind.
func TestMain(m *testing.M) {
	flag.Parse()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: stopping every process\n", sig)
		cancelRoot()
		stopStack(1)
		os.Exit(130)
	}()
	code := m.Run()
	stopStack(code)
	os.Exit(code)
}

// stopStack stops the stack, waiting for a start in progress, and removes its files
// unless code says a test failed (or -e2e.keep).
func stopStack(code int) {
	stackMu.Lock()
	defer stackMu.Unlock()
	if theStack != nil {
		if code != 0 || *keep {
			if _, err := theStack.SaveSimCalls(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: saving the simulator's call log:", err)
			}
		}
		if err := theStack.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
		theStack = nil
	}
	if workDir != "" {
		if code == 0 && !*keep {
			_ = os.RemoveAll(workDir)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: binaries, kubeconfigs and logs kept in %s\n", workDir)
		}
		workDir = ""
	}
}

// operator builds the binaries and starts the stack, once, for every test.
func operator(t *testing.T) *stack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and starts processes")
	}
	stackMu.Lock()
	defer stackMu.Unlock()
	if !started {
		started = true
		theStack, startErr = startStack(rootCtx)
	}
	if startErr != nil {
		t.Fatal(startErr)
	}
	if theStack == nil {
		t.Fatal("the stack was stopped")
	}
	return theStack
}

func startStack(ctx context.Context) (*stack.Stack, error) {
	began := time.Now()
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	if workDir, err = os.MkdirTemp("", "kommo-e2e-"); err != nil {
		return nil, err
	}
	bins, err := stack.Build(ctx, root, workDir)
	if err != nil {
		return nil, fmt.Errorf("building: %w", err)
	}
	built := time.Since(began)
	s, err := stack.Start(ctx, stack.Options{Binaries: bins, Dir: filepath.Join(workDir, "run"), Namespace: "e2e"})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "e2e: binaries built in %s, stack up in %s\n", built.Round(10*time.Millisecond), (time.Since(began) - built).Round(10*time.Millisecond))
	return s, nil
}

// TestOperator runs the flows in parallel, each with its own Kommo account, then scans
// everything the processes logged for the secrets the flows saw.
func TestOperator(t *testing.T) {
	s := operator(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs in %s; their last lines, secrets redacted:\n%s", s.Dir, s.LogTails(40))
		}
	})
	t.Run("flows", func(t *testing.T) {
		t.Run("InstallRefreshReinstallRevoke", func(t *testing.T) { t.Parallel(); testLifecycle(t, s) })
		t.Run("LookAlikeRefererNeverReachesKommo", func(t *testing.T) { t.Parallel(); testLookAlikeReferer(t, s) })
		t.Run("ForgedRevocationChangesNothing", func(t *testing.T) { t.Parallel(); testForgedRevocation(t, s) })
		t.Run("DeleteDisconnectsTheChannel", func(t *testing.T) { t.Parallel(); testDelete(t, s) })
		t.Run("WebhookCannotReadSecrets", func(t *testing.T) { t.Parallel(); testWebhookRBAC(t, s) })
	})
	if err := s.Crashed(); err != nil {
		t.Fatal(err)
	}
	t.Run("NoSecretsInLogsEventsOrStatus", func(t *testing.T) { testNoLeaks(t, s) })
	t.Run("NoRBACDenialsInLogs", func(t *testing.T) {
		denials, err := s.Denials()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range denials {
			t.Errorf("the API server refused a request of the operator (the RBAC of config/rbac is not enough):\n%s", d)
		}
	})
}

// testLifecycle is the demo's flow: install, forced refresh, reinstall, revoke, and a
// reinstall after the revocation.
func testLifecycle(t *testing.T, s *stack.Stack) {
	ctx := t.Context()
	const account = "acme.kommo.com"
	name := s.InstallationName(account)

	// Install.
	must(t, s.Install(ctx, account))
	inst := ok(s.WaitReady(ctx, account))(t)
	acct := ok(s.SimAccount(ctx, account))(t)
	conn := ok(s.SimConnection(ctx, account))(t)
	st := inst.Status
	if st.InstalledAt == nil || st.AccessTokenExpiresAt == nil || st.RefreshTime == nil || st.ConnectedAt == nil {
		t.Fatalf("Ready with an incomplete status: %+v", st)
	}
	switch {
	case !conn.Connected:
		t.Errorf("the channel is not connected in the simulator")
	case st.ScopeID == "" || st.ScopeID != conn.ScopeID:
		t.Errorf("status.scopeID %q, the simulator's connection has %q", st.ScopeID, conn.ScopeID)
	case st.AccountID != acct.ID || st.AmojoID != acct.AmojoID:
		t.Errorf("status account %d/%s, the simulator has %d/%s", st.AccountID, st.AmojoID, acct.ID, acct.AmojoID)
	case st.TokenSecretName != s.TokenSecretName(account):
		t.Errorf("status.tokenSecretName %q", st.TokenSecretName)
	}
	if got := inst.Labels[kommov1.LabelAccountID]; got != strconv.FormatInt(acct.ID, 10) {
		t.Errorf("label %s = %q, want %d", kommov1.LabelAccountID, got, acct.ID)
	}
	secret := ok(s.TokenSecret(ctx, account))(t)
	if secret == nil {
		t.Fatalf("Ready, but no token Secret %s", s.TokenSecretName(account))
	}
	if secret.Type != kommov1.SecretTypeToken {
		t.Errorf("token Secret type %q", secret.Type)
	}
	if ref := metav1.GetControllerOf(secret); ref == nil || ref.UID != inst.UID {
		t.Errorf("the token Secret is not controlled by the installation: %v", secret.OwnerReferences)
	}
	for key, want := range map[string]string{
		kommov1.TokenKeyAccessToken:   "",
		kommov1.TokenKeyRefreshToken:  "",
		kommov1.TokenKeyExpiresAt:     st.AccessTokenExpiresAt.UTC().Format(time.RFC3339),
		kommov1.TokenKeyAccountDomain: account,
		kommov1.TokenKeyAccountID:     strconv.FormatInt(acct.ID, 10),
		kommov1.TokenKeyAmojoID:       acct.AmojoID,
		kommov1.TokenKeyScopeID:       conn.ScopeID,
	} {
		got, ok := secret.Data[key]
		switch {
		case !ok || len(got) == 0:
			t.Errorf("token Secret has no %s", key)
		case want != "" && string(got) != want:
			t.Errorf("token Secret %s = %q, want %q", key, got, want)
		}
	}
	if claims, err := kommo.ParseClaims(string(secret.Data[kommov1.TokenKeyAccessToken])); err != nil || claims.AccountID != acct.ID {
		t.Errorf("access_token is not a JWT of account %d (%v)", acct.ID, err)
	}
	codeSecret := &corev1.Secret{}
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: inst.Spec.Authorization.CodeSecretRef.Name}, codeSecret)
	if !apierrors.IsNotFound(err) {
		t.Errorf("the exchanged code Secret still exists (%v)", err)
	}
	calls := ok(s.SimCalls(ctx))(t)
	if n := stack.CountCalls(calls, "exchange", account); n != 1 {
		t.Errorf("%d code exchanges for one install", n)
	}
	out := ok(s.KubectlGet(ctx))(t)
	if !hasRow(out, name, account, "True", "Ready", conn.ScopeID) {
		t.Errorf("kubectl get -o wide does not show %s Ready with its scope id:\n%s", name, out)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Forced refresh through the annotation.
	before := secret.Data
	_ = ok(s.RequestRefresh(ctx, account))(t)
	inst = ok(s.WaitInstallation(ctx, account, "lastRefreshTime set and Ready", func(inst *kommov1.KommoInstallation) (bool, string) {
		return inst.Status.LastRefreshTime != nil && ready(inst), fmt.Sprintf("lastRefreshTime %v, Ready %s", inst.Status.LastRefreshTime, readyOf(inst))
	}))(t)
	secret = ok(s.TokenSecret(ctx, account))(t)
	switch {
	case secret == nil:
		t.Fatal("the token Secret is gone after the refresh")
	case inst.Status.AccessTokenExpiresAt == nil || inst.Status.ConnectedAt == nil:
		t.Fatalf("Ready with an incomplete status: %+v", inst.Status)
	case string(secret.Data[kommov1.TokenKeyRefreshToken]) == string(before[kommov1.TokenKeyRefreshToken]):
		t.Error("the refresh token in the Secret did not change")
	case string(secret.Data[kommov1.TokenKeyAccessToken]) == string(before[kommov1.TokenKeyAccessToken]):
		t.Error("the access token in the Secret did not change")
	case string(secret.Data[kommov1.TokenKeyExpiresAt]) != inst.Status.AccessTokenExpiresAt.UTC().Format(time.RFC3339):
		t.Errorf("expires_at %s, status.accessTokenExpiresAt %s", secret.Data[kommov1.TokenKeyExpiresAt], inst.Status.AccessTokenExpiresAt)
	}
	calls = ok(s.SimCalls(ctx))(t)
	if n := stack.CountCalls(calls, "refresh", account); n != 1 {
		t.Errorf("%d refreshes for one request", n)
	}

	// Reinstall: exchanged again and the channel connected again.
	installedAt, connectedAt := inst.Status.InstalledAt, inst.Status.ConnectedAt
	connects := stack.CountCalls(calls, "connect", "")
	access := string(secret.Data[kommov1.TokenKeyAccessToken])
	must(t, s.Install(ctx, account))
	inst = ok(s.WaitInstallation(ctx, account, "installedAt advanced and Ready", func(inst *kommov1.KommoInstallation) (bool, string) {
		at := inst.Status.InstalledAt
		return at != nil && at.After(installedAt.Time) && ready(inst), fmt.Sprintf("installedAt %v (was %v), Ready %s", at, installedAt, readyOf(inst))
	}))(t)
	calls = ok(s.SimCalls(ctx))(t)
	conn = ok(s.SimConnection(ctx, account))(t)
	if n := stack.CountCalls(calls, "exchange", account); n != 2 {
		t.Errorf("%d code exchanges after two installs", n)
	}
	// connectedAt has whole seconds; the forced refresh put more than a second between
	// the two connects. Other tests connect too: the count only has to grow.
	if n := stack.CountCalls(calls, "connect", ""); n <= connects || inst.Status.ConnectedAt == nil || !inst.Status.ConnectedAt.After(connectedAt.Time) ||
		!conn.Connected || conn.ScopeID != inst.Status.ScopeID {
		t.Errorf("not reconnected: connects %d → %d, connectedAt %v → %v; simulator %+v; status.scopeID %q",
			connects, n, connectedAt, inst.Status.ConnectedAt, conn, inst.Status.ScopeID)
	}
	secret = ok(s.TokenSecret(ctx, account))(t)
	if secret == nil || string(secret.Data[kommov1.TokenKeyAccessToken]) == access {
		t.Error("the token Secret does not hold the reinstall's tokens")
	}
	ok(s.WaitEvent(ctx, account, corev1.EventTypeNormal, "Reinstalled"))(t)

	// Revoke: Kommo's signed hook; the tokens go, Ready=False Revoked.
	must(t, s.Revoke(ctx, account))
	inst = ok(s.WaitCondition(ctx, account, kommov1.ConditionReady, metav1.ConditionFalse, kommov1.ReasonRevoked))(t)
	must(t, stack.Poll(ctx, stack.Deadline, "the token Secret deleted", func(ctx context.Context) (bool, string, error) {
		secret, err := s.TokenSecret(ctx, account)
		return err == nil && secret == nil, fmt.Sprintf("Secret present %v, error %v", secret != nil, err), nil
	}))
	if inst.Status.ScopeID != "" || len(inst.Finalizers) != 0 {
		t.Errorf("after the revocation: scopeID %q, finalizers %v", inst.Status.ScopeID, inst.Finalizers)
	}
	ok(s.WaitEvent(ctx, account, corev1.EventTypeNormal, "Revoked"))(t)
	out = ok(s.KubectlGet(ctx))(t)
	if !hasRow(out, name, account, "False", "Revoked") {
		t.Errorf("kubectl get does not show %s revoked:\n%s", name, out)
	}

	// The account installs again: it recovers.
	must(t, s.Install(ctx, account))
	inst = ok(s.WaitReady(ctx, account))(t)
	conn = ok(s.SimConnection(ctx, account))(t)
	if !conn.Connected || inst.Status.ScopeID != conn.ScopeID {
		t.Errorf("after the reinstall that follows a revocation: simulator %+v, status.scopeID %q", conn, inst.Status.ScopeID)
	}
	if secret := ok(s.TokenSecret(ctx, account))(t); secret == nil {
		t.Error("no token Secret after the reinstall that follows a revocation")
	}
	lifecycle.Store(true)
}

// testLookAlikeReferer: a referer that only looks like a Kommo account host is refused
// by the webhook; nothing is written and no request ever reaches that host.
func testLookAlikeReferer(t *testing.T, s *stack.Stack) {
	ctx := t.Context()
	const account = "delta.kommo.com"
	code := ok(s.IssueCode(ctx, account))(t) // a real code, replayed by an attacker
	lookAlikes := []string{"acme.kommo.com.evil.io", "evilkommo.com", "delta.kommo.com.evil.io", "evil.io"}
	for _, referer := range lookAlikes {
		status := ok(s.Redirect(ctx, url.Values{"code": {code}, "referer": {referer}, "from_widget": {"1"}}))(t)
		if status != http.StatusBadRequest {
			t.Errorf("referer %s: the webhook answered %d, want 400", referer, status)
		}
	}
	// The webhook writes before it answers (or answers 202): a 400 wrote nothing.
	secrets := &corev1.SecretList{}
	must(t, s.Client.List(ctx, secrets, client.InNamespace(s.Namespace)))
	for _, sec := range secrets.Items {
		for _, v := range sec.Data {
			if string(v) == code {
				t.Errorf("Secret %s holds the code sent with a look-alike referer", sec.Name)
			}
		}
	}

	// The same code from the real account works: nothing consumed it. Once its install is
	// Ready, the controller has had every chance to contact anything.
	status := ok(s.Redirect(ctx, url.Values{"code": {code}, "referer": {account}, "from_widget": {"1"}}))(t)
	if status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("the real install: the webhook answered %d", status)
	}
	ok(s.WaitReady(ctx, account))(t)

	insts := &kommov1.KommoInstallationList{}
	must(t, s.Client.List(ctx, insts, client.InNamespace(s.Namespace)))
	for _, inst := range insts.Items {
		if strings.Contains(inst.Name, "evil") || strings.Contains(inst.Spec.AccountDomain, "evil") {
			t.Errorf("installation %s (account %s) was created for a look-alike referer", inst.Name, inst.Spec.AccountDomain)
		}
	}
	for _, c := range ok(s.SimCalls(ctx))(t) {
		for _, referer := range lookAlikes {
			if c.Host == referer || strings.HasSuffix(c.Host, "."+referer) || strings.Contains(c.Host, "evil") {
				t.Errorf("a request reached %s: %s %s", c.Host, c.Method, c.Path)
			}
		}
	}
}

// testForgedRevocation: a revoke hook with a bad signature is recorded by the webhook
// (which cannot verify it) and rejected by the controller: a Warning event and nothing
// else.
func testForgedRevocation(t *testing.T, s *stack.Stack) {
	ctx := t.Context()
	const account = "bravo.kommo.com"
	must(t, s.Install(ctx, account))
	inst := ok(s.WaitReady(ctx, account))(t)
	before := ok(s.TokenSecret(ctx, account))(t)
	if before == nil {
		t.Fatal("no token Secret")
	}
	id := strconv.FormatInt(inst.Status.AccountID, 10)
	forged := url.Values{
		"client_uuid": {s.ClientID}, "account_id": {id},
		"signature": {kommo.RevokeSignature("not-the-client-secret", s.ClientID, id)},
	}
	status := ok(s.RevokeHook(ctx, forged))(t)
	if status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("the webhook answered %d to a well-formed revoke hook", status)
	}
	ok(s.WaitInstallation(ctx, account, "the forged hook recorded in spec.revocation", func(inst *kommov1.KommoInstallation) (bool, string) {
		r := inst.Spec.Revocation
		return r != nil && r.Signature == forged.Get("signature"), fmt.Sprintf("spec.revocation %v", r != nil)
	}))(t)
	ok(s.WaitEvent(ctx, account, corev1.EventTypeWarning, "RevocationIgnored"))(t)

	after := ok(s.WaitReady(ctx, account))(t) // for the generation that holds the forged hook
	secret := ok(s.TokenSecret(ctx, account))(t)
	conn := ok(s.SimConnection(ctx, account))(t)
	switch {
	case secret == nil:
		t.Error("a forged revocation deleted the token Secret")
	case string(secret.Data[kommov1.TokenKeyAccessToken]) != string(before.Data[kommov1.TokenKeyAccessToken]):
		t.Error("a forged revocation changed the tokens")
	case !after.Status.InstalledAt.Equal(inst.Status.InstalledAt) || after.Status.ScopeID != inst.Status.ScopeID:
		t.Errorf("a forged revocation changed the status: %+v", after.Status)
	case !conn.Connected:
		t.Error("the channel is no longer connected")
	}
}

// testDelete: deleting an installation disconnects its channel in Kommo first.
func testDelete(t *testing.T, s *stack.Stack) {
	ctx := t.Context()
	const account = "charlie.kommo.com"
	must(t, s.Install(ctx, account))
	inst := ok(s.WaitReady(ctx, account))(t)
	if conn := ok(s.SimConnection(ctx, account))(t); !conn.Connected {
		t.Fatal("not connected before the delete")
	}
	must(t, s.Client.Delete(ctx, inst))
	must(t, s.WaitDeleted(ctx, inst))
	if conn := ok(s.SimConnection(ctx, account))(t); conn.Connected {
		t.Error("the channel is still connected in the simulator after the installation was deleted")
	}
	amojo := ok(kommo.AmojoHost(account))(t)
	if n := stack.CountCalls(ok(s.SimCalls(ctx))(t), "disconnect", amojo); n < 1 {
		t.Errorf("no disconnect reached %s", amojo)
	}
}

// testWebhookRBAC: the webhook's identity, through the kubeconfig it runs with, can read
// no Secret (it holds no secrets by design).
func testWebhookRBAC(t *testing.T, s *stack.Stack) {
	ctx := t.Context()
	c := ok(s.ClientFor(s.WebhookKubeconfig))(t)
	err := c.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: "wa-bridge-kommo"}, &corev1.Secret{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("the webhook's identity reading a Secret: %v, want Forbidden", err)
	}
	if err := c.List(ctx, &corev1.SecretList{}, client.InNamespace(s.Namespace)); !apierrors.IsForbidden(err) {
		t.Errorf("the webhook's identity listing Secrets: %v, want Forbidden", err)
	}
}

// testNoLeaks: none of the secrets the flows saw (codes, tokens, revoke signatures, client
// and channel secrets, and whatever the simulator can list) is in the controller's or the
// webhook's log, in an event or in a status.
func testNoLeaks(t *testing.T, s *stack.Stack) {
	ctx := t.Context()
	leaks, scanned, err := s.ScanLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 1024 {
		t.Fatalf("only %d bytes of logs: the scan would prove nothing", scanned)
	}
	secrets := s.Secrets(ctx)
	kinds := map[string]int{}
	for _, kind := range secrets {
		kinds[kind]++
	}
	for _, kind := range []string{"authorization code", "access token", "refresh token", "revoke signature", "client secret", "channel secret", "ServiceAccount token"} {
		if kinds[kind] == 0 && lifecycle.Load() {
			t.Errorf("the scan knows no %s: the flows did not run or did not record it", kind)
		}
	}
	if !s.SimulatorListsSecrets(ctx) {
		t.Logf("the simulator does not list what it issued (GET /_sim/secrets): scanning for the %d secrets the tests saw", len(secrets))
	}

	events, err := s.Events(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	eventsYAML, _ := yaml.Marshal(events)
	leaks = append(leaks, stack.FindLeaks("events", string(eventsYAML), secrets)...)
	insts := &kommov1.KommoInstallationList{}
	must(t, s.Client.List(ctx, insts, client.InNamespace(s.Namespace)))
	for _, inst := range insts.Items {
		status, _ := yaml.Marshal(inst.Status)
		leaks = append(leaks, stack.FindLeaks("status of "+inst.Name, string(status), secrets)...)
	}
	ints := &kommov1.KommoIntegrationList{}
	must(t, s.Client.List(ctx, ints, client.InNamespace(s.Namespace)))
	for _, in := range ints.Items {
		status, _ := yaml.Marshal(in.Status)
		leaks = append(leaks, stack.FindLeaks("status of "+in.Name, string(status), secrets)...)
	}
	for _, l := range leaks {
		t.Error(l)
	}
}

func ready(inst *kommov1.KommoInstallation) bool {
	for _, c := range inst.Status.Conditions {
		if c.Type == kommov1.ConditionReady {
			return c.Status == metav1.ConditionTrue && c.ObservedGeneration == inst.Generation
		}
	}
	return false
}

func readyOf(inst *kommov1.KommoInstallation) string {
	for _, c := range inst.Status.Conditions {
		if c.Type == kommov1.ConditionReady {
			return fmt.Sprintf("%s (%s) %q", c.Status, c.Reason, c.Message)
		}
	}
	return "absent"
}

// hasRow reports whether a line of kubectl output has all the fields, in order.
func hasRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		cols := strings.Fields(line)
		i := 0
		for _, c := range cols {
			if i < len(fields) && c == fields[i] {
				i++
			}
		}
		if i == len(fields) {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ok(f())(t) returns f's value, failing the test when f returned an error.
func ok[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
