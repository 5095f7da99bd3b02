package controllers

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kommo_api_requests_total",
		Help: "Requests to Kommo by API (oauth, account, chats), operation and HTTP status code (0: no response).",
	}, []string{"api", "operation", "code"})
	apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kommo_api_request_duration_seconds",
		Help:    "Latency of requests to Kommo by API and operation.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"api", "operation"})
	tokenRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kommo_token_refresh_total",
		Help: "Token refreshes by result: success, failure (retried) or revoked (reinstall required).",
	}, []string{"result"})

	revocationHooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kommo_revocation_hooks_total",
		Help: "\"Access revoked\" hooks decided, by result (revoked: confirmed with Kommo and acted on; ignored) and reason.",
	}, []string{"result", "reason"})

	unpersisted = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kommo_token_unpersisted_seconds",
		Help:    "Time from Kommo's answer to an exchange or refresh until the new pair was written to the token Secret: the window in which only a SIGKILL can lose it.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	})

	expiryDesc = prometheus.NewDesc("kommo_installation_token_expiry_timestamp_seconds",
		"When the installation's access token expires, as a Unix time.", []string{"namespace", "name"}, nil)
	readyDesc = prometheus.NewDesc("kommo_installation_ready",
		"1 when the installation's Ready condition is True, else 0.", []string{"namespace", "name"}, nil)
)

// collector is registered once; Setup points it at gauges fed by the manager's
// KommoInstallation informer. Before that the per-installation gauges are empty.
var collector = &installationCollector{}

func init() {
	metrics.Registry.MustRegister(apiRequests, apiDuration, tokenRefreshes, revocationHooks, unpersisted, collector)
	for _, result := range []string{"success", "failure", "revoked"} {
		tokenRefreshes.WithLabelValues(result) // export zeroes so rate() works from the start
	}
}

// ObserveKommoRequest records one request to Kommo; it is the kommo.Client's Observe hook.
func ObserveKommoRequest(api, operation string, code int, elapsed time.Duration) {
	apiRequests.WithLabelValues(api, operation, strconv.Itoa(code)).Inc()
	apiDuration.WithLabelValues(api, operation).Observe(elapsed.Seconds())
}

// observeUnpersisted records how long a new pair waited for its write, from answered.
func observeUnpersisted(answered time.Time) { unpersisted.Observe(time.Since(answered).Seconds()) }

// installationCollector reports the per-installation gauges of the latest Setup.
type installationCollector struct {
	mu     sync.Mutex
	gauges *installationGauges
}

func (c *installationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- readyDesc
}

func (c *installationCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	g := c.gauges
	c.mu.Unlock()
	if g != nil {
		g.collect(ch)
	}
}

// installationGauges holds the token expiry and readiness of every installation. The
// informer's events keep them, and a deletion drops them, so deleted installations leave
// no stale series behind, and a scrape reads a small map rather than copying every cached
// installation (at 10,000 that copy was tens of megabytes per scrape).
type installationGauges struct {
	mu    sync.Mutex
	byKey map[types.NamespacedName]gaugeValues
}

// gaugeValues is what the gauges say of one installation.
type gaugeValues struct {
	expiry time.Time // zero: no access token
	ready  bool
}

// feedGauges makes the per-installation gauges report what informer's events say.
func feedGauges(informer cache.Informer) error {
	g := &installationGauges{byKey: map[types.NamespacedName]gaugeValues{}}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    g.set,
		UpdateFunc: func(_, obj any) { g.set(obj) },
		DeleteFunc: g.drop,
	}); err != nil {
		return err
	}
	collector.mu.Lock()
	defer collector.mu.Unlock()
	collector.gauges = g
	return nil
}

func (g *installationGauges) set(obj any) {
	inst, ok := obj.(*kommov1.KommoInstallation)
	if !ok {
		return
	}
	v := gaugeValues{
		ready: meta.IsStatusConditionPresentAndEqual(inst.Status.Conditions, kommov1.ConditionReady, metav1.ConditionTrue),
	}
	if t := inst.Status.AccessTokenExpiresAt; t != nil {
		v.expiry = t.Time
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.byKey[client.ObjectKeyFromObject(inst)] = v
}

func (g *installationGauges) drop(obj any) {
	if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	inst, ok := obj.(*kommov1.KommoInstallation)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.byKey, client.ObjectKeyFromObject(inst))
}

func (g *installationGauges) collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, v := range g.byKey {
		if !v.expiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(v.expiry.Unix()), key.Namespace, key.Name)
		}
		ready := 0.0
		if v.ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready, key.Namespace, key.Name)
	}
}
