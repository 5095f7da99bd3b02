package webhook

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestProbesAndMetrics runs the manager as the subcommand does, with its probe and
// metrics listeners.
func TestProbesAndMetrics(t *testing.T) {
	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	opts := testOptions()
	opts.ShutdownDelay = 2 * time.Second
	mo := ManagerOptions(NewScheme(), opts)
	mo.Metrics = metricsserver.Options{BindAddress: metricsAddr}
	mo.HealthProbeBindAddress = probeAddr
	cfg := rest.CopyConfig(env.Config)
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Setup(mgr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	eventually(t, 30*time.Second, "readyz", func() bool {
		code, _, err := httpGet("http://" + probeAddr + "/readyz")
		return err == nil && code == http.StatusOK
	})
	if code, _, err := httpGet("http://" + probeAddr + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("healthz: %d %v", code, err)
	}
	if srv.Addr() == "" {
		t.Fatal("ready before the server listens")
	}
	h := &harness{t: t, srv: srv, mgr: mgr, base: "http://" + srv.Addr()}
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("metrics"))); resp.status != http.StatusOK {
		t.Fatalf("install: %d %q", resp.status, resp.body)
	}
	code, body, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("metrics: %d %v", code, err)
	}
	for _, want := range []string{
		`kommo_webhook_requests_total{outcome="recorded",route="redirect"}`,
		`kommo_webhook_requests_total{outcome="not_found",route="revoke"}`,
		`kommo_webhook_request_duration_seconds_bucket{route="redirect",le="0.1"}`,
		`kommo_webhook_deferred_writes 0`,
		`kommo_webhook_deferred_writes_total{result="expired"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, testCode("metrics")[:16]) || strings.Contains(body, "acme.kommo.com") {
		t.Error("metrics carry request values")
	}

	// Asked to stop, it turns unready but goes on serving for the shutdown delay.
	cancel()
	eventually(t, 10*time.Second, "readyz to fail", func() bool {
		code, _, err := httpGet("http://" + probeAddr + "/readyz")
		return err == nil && code != http.StatusOK
	})
	resp, err := http.Get(h.base + redirectPath(ns, "bridge") + "?" + installQuery("late.kommo.com", testCode("late")).Encode())
	if err != nil {
		t.Fatalf("install during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("install during the shutdown delay: %d", resp.StatusCode)
	}
	if !resp.Close {
		t.Error("answers during the shutdown delay keep the connection open: proxies go on sending here")
	}
	if err := <-done; err != nil {
		t.Errorf("manager: %v", err)
	}
	stopped = true
	getInstallation(t, ns, "bridge.late.kommo.com")
}

// TestServerLimits: HTTP/2 is off unless asked for, and oversized headers are refused.
func TestServerLimits(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	resp, err := http.Get(h.base + "/kommo/x/y/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/1.1" {
		t.Errorf("protocol %s", resp.Proto)
	}
	req, _ := http.NewRequest(http.MethodGet, h.base+"/kommo/x/y/redirect", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeaderBytes))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d, want 431", resp.StatusCode)
	}
	if r := h.do(http.MethodGet, "/elsewhere", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown path: %d", r.status)
	}
	// An unclean path is not redirected (a redirect would repeat the code).
	for _, p := range []string{"//kommo/ns/bridge/redirect", "/kommo/ns/../ns/bridge/redirect", "/kommo/ns/bridge/redirect/"} {
		r := h.do(http.MethodGet, p+"?referer=acme.kommo.com&code=secretcode123", nil, "Accept", "text/html")
		if r.status != http.StatusNotFound || strings.Contains(r.body, "secretcode123") || r.header.Get("Location") != "" {
			t.Errorf("%s: %d, Location %q", p, r.status, r.header.Get("Location"))
		}
	}
}

// Readiness follows the write path: a replica whose writes the API server does not take
// reports unready, and ready again once they pass. The probe persists nothing.
func TestReadinessFollowsTheWritePath(t *testing.T) {
	proxy := newStallProxy(t)
	opts := testOptions()
	opts.WriteProbeInterval, opts.WriteProbeTimeout = 100*time.Millisecond, 200*time.Millisecond
	opts.ProbeNamespace = env.Namespace(t)
	opts.RequestDeadline = 300 * time.Millisecond
	h := startWebhook(t, proxy.config(), opts, nil)
	eventually(t, 10*time.Second, "ready", func() bool { return h.srv.readyz(nil) == nil })
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")

	proxy.stall()
	eventually(t, 10*time.Second, "unready while writes stall", func() bool {
		err := h.srv.readyz(nil)
		return err != nil && strings.Contains(err.Error(), "cannot write")
	})
	// Still answering: an install that reaches it anyway is kept.
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("unready"))); resp.status != http.StatusAccepted {
		t.Errorf("install while unready: %d %q", resp.status, resp.body)
	}
	proxy.unstall()
	eventually(t, 10*time.Second, "ready again", func() bool { return h.srv.readyz(nil) == nil })
	eventually(t, 20*time.Second, "the install to land", func() bool {
		_, insts := objects(t, ns)
		return len(insts) == 1
	})
	if secrets, insts := objects(t, opts.ProbeNamespace); len(secrets)+len(insts) != 0 {
		t.Errorf("the write probe left %d Secrets and %d installations", len(secrets), len(insts))
	}
}

// SIGTERM with installs in flight: requests waiting on a stalled API server, and more
// arriving during the shutdown delay, are all answered, and every one is recorded before
// the manager stops.
func TestShutdownLosesNoInstallInFlight(t *testing.T) {
	proxy := newStallProxy(t)
	opts := testOptions()
	opts.RequestDeadline = 2 * time.Second
	opts.ShutdownDelay = 3 * time.Second
	opts.ShutdownTimeout = 30 * time.Second
	h := startWebhook(t, proxy.config(), opts, nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")

	proxy.stall()
	statuses := make(chan int, 16)
	send := func(i int) {
		host := fmt.Sprintf("a%02d.kommo.com", i)
		go func() {
			r, err := http.Get(h.base + redirectPath(ns, "bridge") + "?" + installQuery(host, testCode(host)).Encode())
			if err != nil {
				statuses <- 0
				return
			}
			r.Body.Close()
			statuses <- r.StatusCode
		}()
	}
	const early, late = 6, 3
	for i := range early {
		send(i)
	}
	eventually(t, 10*time.Second, "the installs to be in flight", func() bool { return proxy.held.Load() == early })
	h.cancel() // what SIGTERM does
	eventually(t, 10*time.Second, "unready", func() bool { return h.srv.readyz(nil) != nil })
	for i := early; i < early+late; i++ {
		send(i) // during the shutdown delay
	}
	for range early + late {
		if s := <-statuses; s != http.StatusOK && s != http.StatusAccepted {
			t.Errorf("an install in flight got %d", s)
		}
	}
	select {
	case err := <-h.done:
		t.Fatalf("the manager stopped with writes pending (%v)", err)
	default:
	}
	proxy.unstall()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("manager: %v", err)
		}
		h.done <- err
	case <-time.After(60 * time.Second):
		t.Fatal("the manager did not stop")
	}
	// No polling: shutdown returned only after every write landed.
	_, insts := objects(t, ns)
	if len(insts) != early+late {
		t.Errorf("%d installations recorded, want %d", len(insts), early+late)
	}
}
