package webhook

import (
	"context"
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
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("late.kommo.com", testCode("late"))); resp.status != http.StatusOK {
		t.Errorf("install during the shutdown delay: %d %q", resp.status, resp.body)
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
