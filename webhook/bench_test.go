package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// benchParallelism × GOMAXPROCS goroutines send requests at once: 16 on 2 cores, a burst
// of concurrent installs rather than a queue.
const benchParallelism = 8

// latencies collects per-operation durations from many goroutines and reports p50, p99
// and throughput.
type latencies struct {
	mu    sync.Mutex
	all   []time.Duration
	start time.Time
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, unit string) {
	elapsed := time.Since(l.start)
	slices.Sort(l.all)
	if len(l.all) == 0 {
		return
	}
	pct := func(p float64) float64 {
		i := min(int(float64(len(l.all))*p), len(l.all)-1)
		return float64(l.all[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), unit+"/s")
}

var benchRun atomic.Int64

// unthrottled lifts client-go's token bucket, so the API benchmarks measure the API
// server and the webhook rather than --kube-api-qps.
func unthrottled() *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	return cfg
}

// BenchmarkRedirect: installs into distinct accounts through the real HTTP server, the
// real manager and the real API server (two writes each: code Secret and installation).
// "unthrottled" compares with the BenchmarkAPIServer* floors; "kube-api-qps=1000" runs
// with the subcommand's default client-side limits (--kube-api-qps, --kube-api-burst).
// The pending cap is off (every account here stays pending), except in "pending-cap",
// where the cap and the per-IP share are raised above the run as for a migration: every
// install of the run stays pending from one IP, the worst case for their bookkeeping.
func BenchmarkRedirect(b *testing.B) {
	b.Run("unthrottled", func(b *testing.B) { benchmarkRedirect(b, unthrottled(), 0) })
	b.Run(fmt.Sprintf("kube-api-qps=%d", DefaultKubeAPIQPS), func(b *testing.B) { benchmarkRedirect(b, nil, 0) })
	b.Run("pending-cap", func(b *testing.B) { benchmarkRedirect(b, unthrottled(), 1_000_000) })
}

func benchmarkRedirect(b *testing.B, cfg *rest.Config, pendingCap int) {
	opts := testOptions()
	opts.MaxPendingInstallations, opts.MaxPendingPerClient = pendingCap, pendingCap
	h := startWebhook(b, cfg, opts, nil)
	ns := env.Namespace(b)
	h.createIntegration(ns, "bench")
	run := benchRun.Add(1)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	base := h.base + redirectPath(ns, "bench")
	measure(b, "installs", func(n int64) error {
		resp, err := hc.Get(fmt.Sprintf("%s?referer=r%d-a%d.kommo.com&code=def50200%032x", base, run, n, n))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("install %d not recorded in time: %s", n, resp.Status)
		}
		return nil
	})
}

// measure runs op for b.N distinct n from benchParallelism goroutines per CPU and reports
// latency percentiles and the rate in unit per second. Any error fails the benchmark.
func measure(b *testing.B, unit string, op func(n int64) error) {
	var next atomic.Int64
	lat := &latencies{}
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	lat.start = time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			err := op(next.Add(1))
			mine = append(mine, time.Since(t0))
			if err != nil {
				b.Error(err)
				break
			}
		}
		lat.add(mine)
	})
	b.StopTimer()
	lat.report(b, unit)
}

// benchClient writes to the API server directly, unthrottled.
func benchClient(b *testing.B) client.Client {
	c, err := client.New(unthrottled(), client.Options{Scheme: NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// codeSecret is a code Secret like the webhook's, for the raw-write floors.
func codeSecret(ns string, run, n int64) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d-%d", run, n), Namespace: ns,
			Labels: map[string]string{kommov1.LabelManagedBy: kommov1.ManagedByValue}},
		Type: kommov1.SecretTypeAuthorizationCode,
		Data: map[string][]byte{kommov1.AuthorizationCodeKey: fmt.Appendf(nil, "def50200%032x", n)},
	}
}

// BenchmarkAPIServerCreateSecret is the floor under BenchmarkRedirect: the raw rate at
// which the same API server creates Secrets like the code Secret (one write).
func BenchmarkAPIServerCreateSecret(b *testing.B) {
	c, ns, run := benchClient(b), env.Namespace(b), benchRun.Add(1)
	measure(b, "creates", func(n int64) error {
		return c.Create(context.Background(), codeSecret(ns, run, n))
	})
}

// BenchmarkAPIServerInstallWrites is an install's two writes (code Secret, then the
// KommoInstallation) straight to the API server: BenchmarkRedirect minus the webhook.
func BenchmarkAPIServerInstallWrites(b *testing.B) {
	c, ns, run := benchClient(b), env.Namespace(b), benchRun.Add(1)
	measure(b, "installs", func(n int64) error {
		secret := codeSecret(ns, run, n)
		if err := c.Create(context.Background(), secret); err != nil {
			return err
		}
		host := fmt.Sprintf("r%d-a%d.kommo.com", run, n)
		return c.Create(context.Background(), &kommov1.KommoInstallation{
			ObjectMeta: metav1.ObjectMeta{Name: "bench." + host, Namespace: ns},
			Spec: kommov1.KommoInstallationSpec{
				IntegrationRef: kommov1.LocalObjectReference{Name: "bench"},
				AccountDomain:  host,
				Authorization: &kommov1.Authorization{
					CodeSecretRef: kommov1.SecretKeyRef{Name: secret.Name, Key: kommov1.AuthorizationCodeKey},
					ReceivedAt:    metav1.NewMicroTime(time.Now()),
				},
			},
		})
	})
}

// BenchmarkPendingCount is the pending cap's cost per redirect with many installations of
// one integration in the cache, none of them pending (installed long ago): it is an
// indexed lookup of the pending installs, so ns/op does not grow with the installations.
func BenchmarkPendingCount(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("installations=%d", n), func(b *testing.B) { benchmarkPendingCount(b, n) })
	}
}

func benchmarkPendingCount(b *testing.B, installations int) {
	opts := testOptions()
	opts.MaxPendingPerClient = 0
	h := startWebhook(b, nil, opts, nil)
	ns := env.Namespace(b)
	integ := h.createIntegration(ns, "bench")
	c := benchClient(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(installations); i = next.Add(1) {
				host := fmt.Sprintf("a%d.kommo.com", i)
				err := c.Create(context.Background(), &kommov1.KommoInstallation{
					ObjectMeta: metav1.ObjectMeta{Name: "bench." + host, Namespace: ns},
					Spec:       kommov1.KommoInstallationSpec{IntegrationRef: kommov1.LocalObjectReference{Name: "bench"}, AccountDomain: host},
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(b, 5*time.Minute, "the cache to hold every installation", func() bool {
		list := &kommov1.KommoInstallationList{}
		return h.mgr.GetCache().List(context.Background(), list, client.InNamespace(ns)) == nil && len(list.Items) == installations
	})
	in := install{
		key:         client.ObjectKey{Namespace: ns, Name: "bench.new.kommo.com"},
		integration: integ,
		secretName:  "kommo-code-bench",
		receivedAt:  time.Now(),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		release, _, outcome := h.srv.admitPending(context.Background(), in, netip.Addr{}, h.srv.log)
		if outcome != "" {
			b.Fatalf("refused: %s", outcome)
		}
		release()
	}
}
