package webhook

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"
)

// stallProxy sits between the webhook and the API server. While stalled it holds every
// write (POST, PUT, PATCH) until released, or until the client gives up, in which case the
// write never reaches the API server. Reads and watches pass, so the cache keeps working.
type stallProxy struct {
	*httptest.Server
	held atomic.Int32

	mu      sync.Mutex
	release chan struct{} // nil: not stalled
}

func newStallProxy(t testing.TB) *stallProxy {
	t.Helper()
	target, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport
	rp.FlushInterval = -1 // watches stream
	p := &stallProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			// Read the body first: only then does the server notice a client that gives up
			// (and cancel r.Context()).
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			release := p.release
			p.mu.Unlock()
			if release != nil {
				p.held.Add(1)
				select {
				case <-release:
					p.held.Add(-1)
				case <-r.Context().Done():
					p.held.Add(-1)
					http.Error(w, "client gave up", http.StatusServiceUnavailable)
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { p.unstall(); p.Close() })
	return p
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.release == nil {
		p.release = make(chan struct{})
	}
}

func (p *stallProxy) unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.release != nil {
		close(p.release)
		p.release = nil
	}
}

// config reaches the API server through the proxy, as the administrator.
func (p *stallProxy) config() *rest.Config { return &rest.Config{Host: p.URL} }

func deferredTotal(result string) float64 {
	return testutil.ToFloat64(deferredWritesTotal.WithLabelValues(result))
}

// deferredOpts answer in 300ms; one attempt may take long, so a held write proceeds as
// soon as it is released.
func deferredOpts() Options {
	o := testOptions()
	o.RequestDeadline = 300 * time.Millisecond
	return o
}

// The deferred-write tests change the global deferred gauge: they do not run in parallel.

func TestSlowAPIServerDefersTheWrite(t *testing.T) {
	proxy := newStallProxy(t)
	h := startWebhook(t, proxy.config(), deferredOpts(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	deferredReq, recorded := requests(routeRedirect, outcomeDeferred), deferredTotal(deferredRecorded)
	code := testCode("slow")

	proxy.stall()
	// The API server holds the write indefinitely: the request is answered anyway (the
	// client's timeout, far above the deadline, would fail it otherwise).
	resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", code), "Accept", "text/html")
	if resp.status != http.StatusAccepted || resp.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("got %d %q, want 202 and the received page", resp.status, resp.body)
	}
	if g := testutil.ToFloat64(deferredWrites); g != 1 {
		t.Errorf("deferred writes gauge = %v, want 1", g)
	}
	if d := requests(routeRedirect, outcomeDeferred) - deferredReq; d != 1 {
		t.Errorf("deferred counted %v times", d)
	}
	if proxy.held.Load() != 1 {
		t.Fatalf("%d writes held, want the code Secret's", proxy.held.Load())
	}
	if secrets, insts := objects(t, ns); len(secrets)+len(insts) != 0 {
		t.Fatal("written while the API server was stalled")
	}

	proxy.unstall()
	eventually(t, 20*time.Second, "the deferred write to land", func() bool {
		_, insts := objects(t, ns)
		return len(insts) == 1 && testutil.ToFloat64(deferredWrites) == 0
	})
	inst := getInstallation(t, ns, "bridge.acme.kommo.com")
	if inst.Spec.Authorization.CodeSecretRef.Name != wantSecretName(ns, "bridge", "acme.kommo.com", code) {
		t.Errorf("codeSecretRef %+v", inst.Spec.Authorization.CodeSecretRef)
	}
	if secrets, _ := objects(t, ns); len(secrets) != 1 {
		t.Errorf("%d Secrets, want 1", len(secrets))
	}
	if d := deferredTotal(deferredRecorded) - recorded; d != 1 {
		t.Errorf("deferred recorded counted %v times", d)
	}
	assertNoLeak(t, code)
}

func TestDeferredWriteExpiresWithTheCode(t *testing.T) {
	proxy := newStallProxy(t)
	opts := deferredOpts()
	opts.CodeLifetime = 2 * time.Second
	opts.AttemptTimeout = 200 * time.Millisecond
	h := startWebhook(t, proxy.config(), opts, nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	expired := deferredTotal(deferredExpired)

	proxy.stall()
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("expire"))); resp.status != http.StatusAccepted {
		t.Fatalf("got %d %q, want 202", resp.status, resp.body)
	}
	eventually(t, 20*time.Second, "the deferred write to expire", func() bool {
		return deferredTotal(deferredExpired)-expired == 1
	})
	if g := testutil.ToFloat64(deferredWrites); g != 0 {
		t.Errorf("deferred writes gauge = %v after expiry", g)
	}
	// Once the proxy has seen every abandoned attempt go, none reached the API server and
	// nothing may land. (A write already on its way when the client gives up can still
	// land in real life; the controller then finds an orphan code Secret, owned by the
	// integration.)
	eventually(t, 10*time.Second, "the proxy to drop the abandoned writes", func() bool { return proxy.held.Load() == 0 })
	proxy.unstall()
	if secrets, insts := objects(t, ns); len(secrets)+len(insts) != 0 {
		t.Errorf("an expired install wrote %d Secrets and %d installations", len(secrets), len(insts))
	}
}

func TestShutdownWaitsForDeferredWrites(t *testing.T) {
	proxy := newStallProxy(t)
	h := startWebhook(t, proxy.config(), deferredOpts(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")

	proxy.stall()
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("shutdown"))); resp.status != http.StatusAccepted {
		t.Fatalf("got %d %q, want 202", resp.status, resp.body)
	}
	h.cancel()
	eventually(t, 10*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", h.srv.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-h.done:
		t.Fatalf("the manager stopped with a write pending (%v)", err)
	default:
	}
	proxy.unstall()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the manager did not stop")
	}
	// No polling: shutdown returned only after the write landed.
	getInstallation(t, ns, "bridge.acme.kommo.com")
	if g := testutil.ToFloat64(deferredWrites); g != 0 {
		t.Errorf("deferred writes gauge = %v after shutdown", g)
	}
}

// With the default deadline the webhook answers within a second whatever the API server
// does, leaving most of Kommo's 3 seconds to the network; the write lands later.
func TestDefaultDeadlineLeavesKommoTheNetwork(t *testing.T) {
	if d := DefaultOptions().RequestDeadline; d > time.Second {
		t.Fatalf("default --request-deadline %v, want at most 1s", d)
	}
	proxy := newStallProxy(t)
	h := startWebhook(t, proxy.config(), testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	proxy.stall()
	start := time.Now()
	resp := h.get(redirectPath(ns, "bridge"), installQuery("acme.kommo.com", testCode("margin")))
	elapsed := time.Since(start)
	if resp.status != http.StatusAccepted {
		t.Fatalf("got %d %q, want 202", resp.status, resp.body)
	}
	if elapsed > time.Second {
		t.Errorf("answered after %v, want at most 1s", elapsed)
	}
	proxy.unstall()
	eventually(t, 20*time.Second, "the deferred write to land", func() bool {
		_, insts := objects(t, ns)
		return len(insts) == 1
	})
}
