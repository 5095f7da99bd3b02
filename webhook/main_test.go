package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

var (
	env *testenv.Env
	// logs holds everything every webhook in this process logged, down to V(2), so tests
	// can check that no secret ever reaches a log.
	logs testenv.Buffer
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(&logs), zap.Level(zapcore.Level(-2))))
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	// Every test code starts like Kommo's ("def50200…"): none may have reached a log.
	for _, secret := range []string{"def50200", "secretcode123"} {
		if strings.Contains(logs.String(), secret) {
			fmt.Fprintf(os.Stderr, "FAIL: an authorization code (%s…) reached the logs\n", secret)
			code = 1
		}
	}
	os.Exit(code)
}

const testClientID = "01d01160-d7a0-4087-b4af-6a1bb83fcd1d"

// harness is one webhook, run by a real manager with the production options against the
// test API server.
type harness struct {
	t      testing.TB
	srv    *Server
	mgr    manager.Manager
	base   string // http://host:port
	cancel context.CancelFunc
	done   chan error
}

// testOptions are the defaults without the per-IP limit (every test request comes from
// 127.0.0.1), with a short shutdown, and with one write probe only, at start, so that
// tests counting the writes an API server holds see only theirs.
func testOptions() Options {
	o := DefaultOptions()
	o.RateLimit = 0
	o.BindAddress = "127.0.0.1:0"
	o.ShutdownDelay = 0
	o.WriteProbeInterval = time.Hour
	return o
}

// startWebhook runs a webhook against cfg (nil: the test API server as admin). before, if
// set, runs after Setup and before the manager starts.
func startWebhook(t testing.TB, cfg *rest.Config, opts Options, before func(*Server)) *harness {
	t.Helper()
	if cfg == nil {
		cfg = rest.CopyConfig(env.Config)
		cfg.QPS, cfg.Burst = DefaultKubeAPIQPS, DefaultKubeAPIBurst
	}
	mo := ManagerOptions(NewScheme(), opts)
	mo.Metrics = metricsserver.Options{BindAddress: "0"}
	mo.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Setup(mgr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, srv: srv, mgr: mgr, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- mgr.Start(ctx) }()
	t.Cleanup(h.stop)
	eventually(t, 30*time.Second, "the webhook to listen", func() bool {
		select {
		case err := <-h.done:
			t.Fatalf("manager stopped: %v", err)
		default:
		}
		return srv.Addr() != ""
	})
	h.base = "http://" + srv.Addr()
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		h.t.Error("the manager did not stop")
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createIntegration creates a KommoIntegration and waits until the webhook's cache has it.
func (h *harness) createIntegration(ns, name string, domains ...string) *kommov1.KommoIntegration {
	return h.createIntegrationWith(ns, name, func(spec *kommov1.KommoIntegrationSpec) { spec.AccountDomains = domains })
}

// createIntegrationWith is createIntegration with the spec changed by edit first.
func (h *harness) createIntegrationWith(ns, name string, edit func(*kommov1.KommoIntegrationSpec)) *kommov1.KommoIntegration {
	h.t.Helper()
	integ := &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: kommov1.KommoIntegrationSpec{
			ClientID:        testClientID,
			ClientSecretRef: kommov1.SecretKeyRef{Name: name + "-kommo", Key: "client_secret"},
			RedirectURI:     "https://hooks.example.com/kommo/" + ns + "/" + name + "/redirect",
		},
	}
	edit(&integ.Spec)
	if err := env.Client.Create(context.Background(), integ); err != nil {
		h.t.Fatal(err)
	}
	h.waitCached(client.ObjectKeyFromObject(integ), &kommov1.KommoIntegration{}, nil)
	return integ
}

// waitCached waits until the webhook's cache holds key and, if set, cond holds for it.
func (h *harness) waitCached(key client.ObjectKey, obj client.Object, cond func() bool) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, "the cache to see "+key.String(), func() bool {
		return h.mgr.GetCache().Get(context.Background(), key, obj) == nil && (cond == nil || cond())
	})
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   string
}

func (h *harness) get(path string, q url.Values, header ...string) response {
	h.t.Helper()
	return h.do(http.MethodGet, path+"?"+q.Encode(), nil, header...)
}

func (h *harness) do(method, pathAndQuery string, body io.Reader, header ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+pathAndQuery, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	// Far above the request deadline: a request that is not answered in time fails here.
	c := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // the webhook never redirects; see it if it does
	}}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func redirectPath(ns, integ string) string { return "/kommo/" + ns + "/" + integ + "/redirect" }
func revokePath(ns, integ string) string   { return "/kommo/" + ns + "/" + integ + "/revoke" }

func installQuery(referer, code string, extra ...string) url.Values {
	q := url.Values{"referer": {referer}, "code": {code}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

// testCode is shaped like Kommo's codes: "def50200" and hex.
func testCode(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "def50200" + strings.Repeat(hex.EncodeToString(sum[:]), 10)[:600]
}

// count reads a counter or gauge.
func requests(route, outcome string) float64 {
	return testutil.ToFloat64(requestsTotal.WithLabelValues(route, outcome))
}

// objects lists what the webhook may write in ns.
func objects(t testing.TB, ns string) ([]corev1.Secret, []kommov1.KommoInstallation) {
	t.Helper()
	ctx := context.Background()
	secrets := &corev1.SecretList{}
	if err := env.Client.List(ctx, secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	insts := &kommov1.KommoInstallationList{}
	if err := env.Client.List(ctx, insts, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return secrets.Items, insts.Items
}

func getInstallation(t testing.TB, ns, name string) *kommov1.KommoInstallation {
	t.Helper()
	inst := &kommov1.KommoInstallation{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, inst); err != nil {
		t.Fatalf("getting installation %s: %v", name, err)
	}
	return inst
}

// assertNoLeak fails when a secret value shows up in the logs.
func assertNoLeak(t testing.TB, values ...string) {
	t.Helper()
	out := logs.String()
	for _, v := range values {
		if v != "" && strings.Contains(out, v) {
			t.Errorf("the logs contain a secret value (%.12s…)", v)
		}
	}
}
