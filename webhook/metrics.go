package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Routes, the values of the route label.
const (
	routeRedirect = "redirect"
	routeRevoke   = "revoke"
)

// Outcomes, the values of the outcome label of kommo_webhook_requests_total. The set is
// fixed: no label ever carries a request value.
const (
	// outcomeRecorded: the install or revocation was written.
	outcomeRecorded = "recorded"
	// outcomeDuplicate: already recorded (same code, same revocation, or a newer install
	// is already there); nothing written.
	outcomeDuplicate = "duplicate"
	// outcomeDenied: the user declined the install (error=access_denied).
	outcomeDenied = "denied"
	// outcomeRejected: the request failed validation (method, body, size, referer, code…).
	outcomeRejected = "rejected"
	// outcomeUnknownIntegration: no such KommoIntegration in the cache.
	outcomeUnknownIntegration = "unknown_integration"
	// outcomeRateLimited: the client IP exceeded --rate-limit.
	outcomeRateLimited = "rate_limited"
	// outcomePendingCap: the integration has --max-pending-installations unprocessed installs.
	outcomePendingCap = "pending_cap"
	// outcomeDeferred: the API server did not answer within --request-deadline; the write
	// goes on in the background (see kommo_webhook_deferred_writes_total).
	outcomeDeferred = "deferred"
	// outcomeError: the API server refused the write for good.
	outcomeError = "error"
	// outcomeNotFound: a revoke hook for an account no installation is labelled with.
	outcomeNotFound = "not_found"
)

// Results, the values of the result label of kommo_webhook_deferred_writes_total.
const (
	deferredRecorded = "recorded"
	deferredExpired  = "expired"
	// deferredFailed: the API server refused the write for good, or shutdown ran out of
	// time before it landed.
	deferredFailed = "failed"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kommo_webhook_requests_total",
		Help: "Requests to the webhook's Kommo routes by route (redirect, revoke) and outcome.",
	}, []string{"route", "outcome"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kommo_webhook_request_duration_seconds",
		Help:    "Time to answer a request to a Kommo route, by route. Kommo waits at most 3 seconds.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5},
	}, []string{"route"})

	deferredWrites = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kommo_webhook_deferred_writes",
		Help: "Writes answered before the API server confirmed them and still being retried in the background.",
	})

	deferredWritesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kommo_webhook_deferred_writes_total",
		Help: "Background writes that finished, by result: recorded, expired (the code's 20 minutes ran out) or failed.",
	}, []string{"result"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, deferredWrites, deferredWritesTotal)
	// Every series exists from the start, so that rate() and alerts work before the first
	// event of a kind.
	for _, route := range []string{routeRedirect, routeRevoke} {
		requestDuration.WithLabelValues(route)
		for _, o := range []string{outcomeRecorded, outcomeDuplicate, outcomeRejected, outcomeUnknownIntegration,
			outcomeRateLimited, outcomeDeferred, outcomeError} {
			requestsTotal.WithLabelValues(route, o)
		}
	}
	requestsTotal.WithLabelValues(routeRedirect, outcomeDenied)
	requestsTotal.WithLabelValues(routeRedirect, outcomePendingCap)
	requestsTotal.WithLabelValues(routeRevoke, outcomeNotFound)
	for _, r := range []string{deferredRecorded, deferredExpired, deferredFailed} {
		deferredWritesTotal.WithLabelValues(r)
	}
}
