// Package upgrade_test proves that an upgrade loses nothing: installations and token
// Secrets exactly as the previous release wrote them (testdata, captured by
// hack/upgrade-fixtures) are loaded into a real API server, the Kommo simulator is loaded
// with the state that keeps their tokens what they were, and this tree's controller takes
// over. No case may be reinstalled, exchanged again, refreshed before its time or
// reconnected, and every token Secret must still hold a pair Kommo accepts.
package upgrade_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/controllers"
	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
	"github.com/kommo-operator/kommo-operator/test/testenv"
	"github.com/kommo-operator/kommo-operator/test/upgrade/fixture"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	// wait bounds every poll; generous for a loaded two-core machine.
	wait = 45 * time.Second
	// quiet is how long the test watches for calls that must not happen once the new
	// controller has taken over.
	quiet = 3 * time.Second
)

// ages say how long before the takeover a case's objects were last written: the time a
// rollout took. refresh-due's refresh time has passed meanwhile; its access token is
// still valid (24 h).
var ages = map[string]time.Duration{"refresh-due": 17 * time.Hour}

// refreshes are how many refreshes each case may see after the takeover: the one that is
// due; for invalid-client, whose release-era backoff (status.failedAttempts,
// lastFailureTime) is not in today's schema, at most two retries with the wrong secret
// (Kommo refuses them before it looks at the refresh token, so none is spent): one when
// the controller adopts the failure, one when the integration's status.configVersion first
// appears, which ends a backoff recorded without one.
var refreshes = map[string][2]int{"refresh-due": {1, 1}, "invalid-client": {0, 2}}

// ready is the Ready condition each case must reach under the new controller.
var ready = map[string]struct {
	status metav1.ConditionStatus
	reason string
}{
	"ready-chat":     {metav1.ConditionTrue, kommov1.ReasonReady},
	"ready-nochat":   {metav1.ConditionTrue, kommov1.ReasonReady},
	"refresh-due":    {metav1.ConditionTrue, kommov1.ReasonReady},
	"failed-attempt": {metav1.ConditionTrue, kommov1.ReasonReady}, // the first grant works
	"revoked":        {metav1.ConditionFalse, kommov1.ReasonRevoked},
	"long-lived":     {metav1.ConditionTrue, kommov1.ReasonReady},
}

// pending are the cases whose status the controller does not reliably reach yet, while
// the lifecycle rework goes on: their status checks run only with KOMMO_UPGRADE_STRICT=1.
// Add a case here (with why) rather than weaken its checks; delete it once it passes.
var pending = map[string]bool{}

// contract skips a pending case's status checks unless KOMMO_UPGRADE_STRICT=1.
func contract(t *testing.T) {
	t.Helper()
	if os.Getenv("KOMMO_UPGRADE_STRICT") != "1" {
		t.Skip("KOMMO_UPGRADE_STRICT=1 checks it; skipped until the lifecycle rework lands")
	}
}

func TestTakeover(t *testing.T) {
	ctx := context.Background()
	f, err := fixture.Read("testdata")
	if err != nil {
		t.Fatalf("reading the fixtures (re-capture them with `make upgrade-fixtures`): %v", err)
	}
	t.Logf("fixtures of release %s, captured %s", f.Meta.Release, f.Meta.CapturedAt.Format(time.RFC3339))

	// Every time captured moves by now−capturedAt (less a case's age), in the objects and
	// in the simulator alike: the fixtures stay as fresh as the day they were captured.
	now := time.Now().UTC().Truncate(time.Second)
	state := f.Kommo
	cases := map[string]*loaded{}
	for _, c := range fixture.Cases {
		d := now.Sub(f.Meta.CapturedAt) - ages[c.Name]
		shiftKommo(&state, fixture.Host(c.Name), d)
		cases[c.Name] = load(t, ctx, c.Name, f.Objects[c.Name], d)
	}
	sim, srv := kommotest.NewServer(kommotest.Options{QPS: -1})
	t.Cleanup(srv.Close)
	if err := sim.Import(state); err != nil {
		t.Fatalf("loading the simulator: %v", err)
	}
	logs := startController(t, srv.URL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})

	// The takeover: this tree's controller has reconciled every installation, and the one
	// refresh that was due has happened.
	eventually(t, "every installation reconciled by the new controller", func() (bool, string) {
		for _, l := range cases {
			if inst := l.installation(t, ctx); inst.Status.AccountDomain == "" {
				return false, l.name + " has no status.accountDomain yet"
			}
		}
		return true, ""
	})
	due := cases["refresh-due"]
	eventually(t, "the due refresh", func() (bool, string) {
		inst := due.installation(t, ctx)
		n := sim.CallCount("refresh", fixture.Host(due.name))
		return n >= 1 && inst.Status.LastRefreshTime != nil, fmt.Sprintf("%d refreshes, lastRefreshTime %v", n, inst.Status.LastRefreshTime)
	})
	consistently(t, quiet, func() error { return forbiddenCalls(sim) })

	for _, c := range fixture.Cases {
		l := cases[c.Name]
		t.Run(c.Name, func(t *testing.T) {
			inst := l.installation(t, ctx)
			host := fixture.Host(c.Name)
			if n := sim.CallCount("exchange", host); n != 0 {
				t.Errorf("%d code exchanges: a code was sent again", n)
			}
			if n, want := sim.CallCount("refresh", host), refreshes[c.Name]; n < want[0] || n > want[1] {
				t.Errorf("%d refreshes, want %d to %d", n, want[0], want[1])
			}
			if inst.Status.AccountDomain != host {
				t.Errorf("status.accountDomain %q, want %q", inst.Status.AccountDomain, host)
			}
			if was := l.captured("connectedAt"); was != nil && (inst.Status.ConnectedAt == nil || !inst.Status.ConnectedAt.Equal(was)) {
				t.Errorf("status.connectedAt %v, captured %v: the channel was connected again", inst.Status.ConnectedAt, was)
			}
			secret := l.tokenSecret(t, ctx)
			if c.Name == "revoked" {
				if secret != nil {
					t.Error("the revoked installation has a token Secret again")
				}
				return
			}
			if secret == nil {
				t.Fatal("the token Secret is gone")
			}
			if ref := metav1.GetControllerOf(secret); ref == nil || ref.UID != l.uid {
				t.Errorf("token Secret controlled by %+v, want the installation %s", ref, l.uid)
			}
			assertAccepted(t, srv.URL, host, secret, l.longLived)
		})
	}
	if n := sim.UsedRefreshTokenReplays(); n != 0 {
		t.Errorf("%d refreshes sent a spent refresh token", n)
	}
	assertNoSecretsLeaked(t, logs.String(), sim, f.Meta)

	// The status each case reaches under this controller, in the lifecycle's fields.
	t.Run("status", func(t *testing.T) {
		for _, c := range fixture.Cases {
			l := cases[c.Name]
			t.Run(c.Name, func(t *testing.T) {
				if pending[c.Name] {
					contract(t)
				}
				if want, ok := ready[c.Name]; ok {
					waitReady(t, ctx, l, want.status, want.reason)
				}
				inst := l.installation(t, ctx)
				st := inst.Status
				switch c.Name {
				case "ready-chat", "ready-nochat", "refresh-due":
					assertCondition(t, inst, kommov1.ConditionAuthorized, metav1.ConditionTrue, "")
					assertCondition(t, inst, kommov1.ConditionInstalled, metav1.ConditionTrue, "")
				case "long-lived":
					assertCondition(t, inst, kommov1.ConditionAuthorized, metav1.ConditionTrue, "")
				case "failed-attempt":
					// The grant works: the failed reinstall is recorded, nothing more.
					assertCondition(t, inst, kommov1.ConditionAuthorized, metav1.ConditionTrue, "")
					assertCondition(t, inst, kommov1.ConditionInstalled, metav1.ConditionFalse, kommov1.ReasonInvalidCode)
					if a := st.LastAttempt; a == nil || a.Result != kommov1.OutcomeFailed || a.Reason != kommov1.ReasonInvalidCode {
						t.Errorf("status.lastAttempt %+v, want Failed/InvalidCode", a)
					}
				case "revoked":
					if r := st.LastRevocation; r == nil || r.Result != kommov1.OutcomeRevoked {
						t.Errorf("status.lastRevocation %+v, want Revoked", r)
					}
					// Nobody has to act: the account disabled the integration on purpose.
					events := &eventsv1.EventList{}
					if err := env.Client.List(ctx, events, client.InNamespace(l.ns)); err != nil {
						t.Fatal(err)
					}
					for _, e := range events.Items {
						if e.Type == corev1.EventTypeWarning {
							t.Errorf("Warning event %s after the takeover: %s", e.Reason, e.Note)
						}
					}
				case "invalid-client":
					testInvalidClientFixed(t, ctx, l, sim, srv.URL, f.Meta.ClientSecret)
				}
			})
		}
	})
}

// testInvalidClientFixed puts the right client secret back: the backoff the release
// persisted ends within seconds, the requested refresh happens once and the installation
// is Ready.
func testInvalidClientFixed(t *testing.T, ctx context.Context, l *loaded, sim *kommotest.Simulator, simURL, clientSecret string) {
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: l.ns, Name: "wa-bridge-kommo"}, secret); err != nil {
		t.Fatal(err)
	}
	// The failure is recorded against the configuration as it is now, so that what
	// follows is the fix's doing.
	eventually(t, "the refresh's failure recorded against the current configuration", func() (bool, string) {
		integration := &kommov1.KommoIntegration{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: l.ns, Name: fixture.Integration}, integration); err != nil {
			t.Fatal(err)
		}
		backoffs := l.installation(t, ctx).Status.Backoffs
		for _, b := range backoffs {
			if b.ConfigVersion != "" && b.ConfigVersion == integration.Status.ConfigVersion {
				return true, ""
			}
		}
		return false, fmt.Sprintf("backoffs %+v, integration's configVersion %q", backoffs, integration.Status.ConfigVersion)
	})
	host := fixture.Host(l.name)
	before := sim.CallCount("refresh", host)
	secret.Data["client_secret"] = []byte(clientSecret)
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the requested refresh once the client secret is fixed", func() (bool, string) {
		inst := l.installation(t, ctx)
		c := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && inst.Status.LastRefreshTime != nil,
			fmt.Sprintf("Ready %+v, %d refreshes", c, sim.CallCount("refresh", host))
	})
	inst := l.installation(t, ctx)
	for _, b := range inst.Status.Backoffs {
		t.Errorf("backoff left after the fix: %+v", b)
	}
	if n := sim.CallCount("refresh", host) - before; n != 1 {
		t.Errorf("%d refreshes after the fix, want 1", n)
	}
	assertAccepted(t, simURL, host, l.tokenSecret(t, ctx), false)
}

// forbiddenCalls reports a connect or disconnect (no case may reconnect) or a spent
// refresh token sent.
func forbiddenCalls(sim *kommotest.Simulator) error {
	if n := sim.CallCount("connect", "") + sim.CallCount("disconnect", ""); n != 0 {
		return fmt.Errorf("%d Chats API connects or disconnects after the takeover", n)
	}
	if n := sim.UsedRefreshTokenReplays(); n != 0 {
		return fmt.Errorf("%d refreshes with a spent refresh token", n)
	}
	return nil
}

// assertAccepted checks with the simulator that the token Secret's access token
// authenticates and its refresh token is the live one (Kommo's subdomain lookup accepts
// only a refresh token that has not been used or revoked, and does not consume it).
func assertAccepted(t *testing.T, simURL, host string, secret *corev1.Secret, longLived bool) {
	t.Helper()
	if secret == nil {
		t.Error("no token Secret")
		return
	}
	access := string(secret.Data[kommov1.TokenKeyAccessToken])
	if st := simGet(t, simURL, host, "/api/v4/account", "Authorization", "Bearer "+access); st != http.StatusOK {
		t.Errorf("Kommo answers %d to the token Secret's access token", st)
	}
	if longLived {
		return
	}
	_, suffix, _ := strings.Cut(host, ".")
	refresh := string(secret.Data[kommov1.TokenKeyRefreshToken])
	if st := simGet(t, simURL, "api-c."+suffix, "/oauth2/account/current/subdomain", "X-Refresh-Token", refresh); st != http.StatusOK {
		t.Errorf("Kommo answers %d to the token Secret's refresh token: it is spent or revoked", st)
	}
}

func simGet(t *testing.T, simURL, host, path, header, value string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, simURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set(header, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func assertCondition(t *testing.T, inst *kommov1.KommoInstallation, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := meta.FindStatusCondition(inst.Status.Conditions, typ)
	if c == nil || c.Status != status || (reason != "" && c.Reason != reason) {
		t.Errorf("condition %s = %+v, want %s %s", typ, c, status, reason)
	}
}

func waitReady(t *testing.T, ctx context.Context, l *loaded, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s Ready=%s/%s", l.name, status, reason), func() (bool, string) {
		c := meta.FindStatusCondition(l.installation(t, ctx).Status.Conditions, kommov1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		return c.Status == status && c.Reason == reason, fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	})
}

// startController runs this tree's reconcilers as production does, in every namespace,
// against the simulator, until the test ends.
func startController(t *testing.T, simURL string) *testenv.Buffer {
	t.Helper()
	logs := &testenv.Buffer{}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Cache:                  controllers.CacheOptions(""),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 zap.New(zap.WriteTo(logs), zap.Level(zapcore.DebugLevel)),
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kommo.NewClient(kommo.Options{Endpoint: simURL, QPS: 50, Burst: 50, Observe: controllers.ObserveKommoRequest})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.Setup(mgr, controllers.Options{Kommo: kc, MaxConcurrentReconciles: 2}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return logs
}

// assertNoSecretsLeaked scans the controller's log for every token, code and secret.
func assertNoSecretsLeaked(t *testing.T, logs string, sim *kommotest.Simulator, m fixture.Meta) {
	t.Helper()
	if logs == "" {
		t.Error("the controller logged nothing: the leak scan would prove nothing")
	}
	for _, s := range append(sim.Secrets(), m.ClientSecret, m.ChannelSecret) {
		if len(s) >= 8 && strings.Contains(logs, s) {
			t.Errorf("a secret (%d chars, starting %q) appears in the controller's log", len(s), s[:4])
		}
	}
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(wait)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
	t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

// consistently checks that check keeps passing for d: the window in which a call that
// must not happen would show.
func consistently(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
}
