package controllers

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// collector is registered once; Setup points it at the manager's cache.
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

// installationCollector reports token expiry and readiness of every installation at scrape
// time from the cache, so deleted installations leave no stale series behind.
type installationCollector struct {
	mu     sync.Mutex
	reader client.Reader
}

// collectFrom makes the per-installation gauges read from reader, normally the manager's
// cache; before it is called they are empty.
func collectFrom(reader client.Reader) {
	collector.mu.Lock()
	defer collector.mu.Unlock()
	collector.reader = reader
}

func (c *installationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- readyDesc
}

func (c *installationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.mu.Lock()
	reader := c.reader
	c.mu.Unlock()
	list := &kommov1.KommoInstallationList{}
	if reader == nil {
		return
	}
	if err := reader.List(ctx, list); err != nil {
		return // the cache is not started or synced yet
	}
	for _, inst := range list.Items {
		if t := inst.Status.AccessTokenExpiresAt; t != nil {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(t.Unix()), inst.Namespace, inst.Name)
		}
		ready := 0.0
		if meta.IsStatusConditionPresentAndEqual(inst.Status.Conditions, kommov1.ConditionReady, metav1.ConditionTrue) {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready, inst.Namespace, inst.Name)
	}
}
