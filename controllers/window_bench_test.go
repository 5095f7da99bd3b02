package controllers_test

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// BenchmarkRefreshWindow measures how long a refreshed pair exists only in the
// controller's memory — from Kommo's answer to the token Secret's write — against a real
// API server: the window in which a SIGKILL can still lose a response (which Kommo's grace
// rule then recovers). Reported as the mean over b.N refreshes.
func BenchmarkRefreshWindow(b *testing.B) {
	h := newHarness(b, harnessOptions{noChat: true})
	name := h.install("acme.kommo.com")
	h.waitReady(name)
	before := histogram(b, "kommo_token_unpersisted_seconds")
	b.ResetTimer()
	for range b.N {
		h.requestRefresh(name)
	}
	b.StopTimer()
	after := histogram(b, "kommo_token_unpersisted_seconds")
	n := after.GetSampleCount() - before.GetSampleCount()
	if n == 0 {
		b.Fatal("no window observed")
	}
	b.ReportMetric((after.GetSampleSum()-before.GetSampleSum())/float64(n)*1000, "ms-unpersisted/op")
}

func histogram(tb testing.TB, name string) *dto.Histogram {
	tb.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	return &dto.Histogram{}
}
