package webhook

import (
	"context"
	"testing"

	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// BenchmarkInstallationCache measures the live heap the webhook's cache holds per
// KommoInstallation: 2,000 Ready installations in a real API server, a cache with the
// webhook's options synced over them, against the same cache over an empty namespace.
// "whole status" caches the objects as they are, without managedFields only, for
// comparison with the webhook's view of them (installationView).
func BenchmarkInstallationCache(b *testing.B) {
	const installations = 2000
	c, empty, full := benchClient(b), env.Namespace(b), env.Namespace(b)
	tmpl := testenv.ReadyInstallation(b)
	ctx := context.Background()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range installations {
		g.Go(func() error {
			_, err := testenv.CreateReady(gctx, c, tmpl, full, i)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, opts cache.Options) {
		opts.Scheme = NewScheme()
		env.ReportCacheBytes(b, opts, empty, full, installations, &kommov1.KommoInstallation{})
	}
	b.Run("webhook", func(b *testing.B) { run(b, ManagerOptions(NewScheme(), testOptions()).Cache) })
	b.Run("whole status", func(b *testing.B) {
		opts := ManagerOptions(NewScheme(), testOptions()).Cache
		opts.ByObject = map[client.Object]cache.ByObject{&kommov1.KommoInstallation{}: {}}
		run(b, opts)
	})
}
