package controllers_test

import (
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// BenchmarkMetricsScrape measures what one scrape of the controller's metrics allocates
// with 500 Ready installations from a real API server: the per-installation gauges grow
// with the installations, and a scrape must not copy them from the cache.
func BenchmarkMetricsScrape(b *testing.B) {
	const installations = 500
	h := newHarness(b, harnessOptions{noChat: true})
	names := make([]string, installations)
	for i := range names {
		names[i] = h.install(fmt.Sprintf("acme%04d.kommo.com", i))
	}
	for _, name := range names {
		h.waitReady(name)
	}
	b.ReportAllocs()
	for b.Loop() {
		families, err := metrics.Registry.Gather()
		if err != nil {
			b.Fatal(err)
		}
		if len(families) == 0 {
			b.Fatal("nothing gathered")
		}
	}
}
