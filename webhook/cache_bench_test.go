package webhook

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// readyInstallation is a KommoInstallation as the controller leaves it Ready, with its
// channel connected and one source synced, as read from the API server.
//
//go:embed testdata/ready-installation.json
var readyInstallation []byte

// BenchmarkInstallationCache measures the live heap the webhook's cache holds per
// KommoInstallation: 2,000 Ready installations in a real API server, a cache with the
// webhook's options synced over them, against the same cache over an empty namespace.
// "whole status" caches the objects as they are, without managedFields only, for
// comparison with the webhook's view of them (installationView).
func BenchmarkInstallationCache(b *testing.B) {
	const installations = 2000
	c, empty, full := benchClient(b), env.Namespace(b), env.Namespace(b)
	var tmpl kommov1.KommoInstallation
	if err := json.Unmarshal(readyInstallation, &tmpl); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range installations {
		g.Go(func() error {
			it := &kommov1.KommoInstallation{Spec: *tmpl.Spec.DeepCopy()}
			it.Spec.AccountDomain = fmt.Sprintf("acme%05d.kommo.com", i)
			it.Name, it.Namespace = it.Spec.IntegrationRef.Name+"."+it.Spec.AccountDomain, full
			it.Finalizers, it.Labels = slices.Clone(tmpl.Finalizers), maps.Clone(tmpl.Labels)
			it.Labels[kommov1.LabelAccountID] = fmt.Sprint(30000000 + i)
			if err := c.Create(gctx, it); err != nil {
				return err
			}
			it.Status = *tmpl.Status.DeepCopy()
			it.Status.AccountDomain = it.Spec.AccountDomain
			return c.Status().Update(gctx, it)
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
