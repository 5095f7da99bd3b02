package testenv

import (
	"context"
	"runtime"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// ReportCacheBytes reports, as B/installation, the live heap a cache with opts holds
// per KommoInstallation of namespace full (which holds installations of them), against
// the same cache over namespace empty: each cache runs an informer for each of objs.
func (e *Env) ReportCacheBytes(b *testing.B, opts cache.Options, empty, full string, installations int, objs ...client.Object) {
	var perInstallation float64
	for b.Loop() {
		base := e.cachedHeap(b, opts, empty, 0, objs)
		perInstallation = float64(e.cachedHeap(b, opts, full, installations, objs)-base) / float64(installations)
	}
	b.ReportMetric(perInstallation, "B/installation")
}

// cachedHeap starts a cache with opts over namespace ns, waits until it holds want
// installations, and returns the live heap after a collection while it still runs.
func (e *Env) cachedHeap(b *testing.B, opts cache.Options, ns string, want int, objs []client.Object) uint64 {
	b.Helper()
	opts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := cache.New(e.Config, opts)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	for _, obj := range objs {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			b.Fatal(err)
		}
	}
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("the cache did not sync")
	}
	if n := cachedInstallations(ctx, b, c); n != want {
		b.Fatalf("the cache holds %d installations, want %d", n, want)
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	runtime.KeepAlive(c)
	return m.HeapAlloc
}

func cachedInstallations(ctx context.Context, b *testing.B, c cache.Cache) int {
	list := &kommov1.KommoInstallationList{}
	if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		b.Fatal(err)
	}
	return len(list.Items)
}
