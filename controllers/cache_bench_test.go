package controllers_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/controllers"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// BenchmarkInstallationCache measures the live heap the controller's cache holds per
// installation: 2,000 Ready KommoInstallations (shaped as testenv.ReadyInstallation: one
// read from the API server after the controller made it Ready, with a channel and a
// source) and their token Secrets in a real API server, a cache with the controller's
// options synced over them, against the same cache over an empty namespace.
// "managedFields stripped" is the cache without interning, for comparison.
func BenchmarkInstallationCache(b *testing.B) {
	const installations = 2000
	tmpl := testenv.ReadyInstallation(b)
	empty, full := env.Namespace(b), env.Namespace(b)
	ctx := context.Background()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range installations {
		g.Go(func() error { return createReady(gctx, tmpl, full, i) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	secrets := &metav1.PartialObjectMetadata{}
	secrets.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	run := func(b *testing.B, opts cache.Options) {
		opts.Scheme = env.Scheme
		env.ReportCacheBytes(b, opts, empty, full, installations, &kommov1.KommoInstallation{}, secrets)
	}
	b.Run("controller", func(b *testing.B) { run(b, controllers.CacheOptions("")) })
	b.Run("managedFields stripped", func(b *testing.B) {
		opts := controllers.CacheOptions("")
		opts.DefaultTransform = cache.TransformStripManagedFields()
		run(b, opts)
	})
}

// createReady creates installation i of namespace ns as tmpl, Ready, and its token
// Secret as the controller writes it.
func createReady(ctx context.Context, tmpl *kommov1.KommoInstallation, ns string, i int) error {
	it, err := testenv.CreateReady(ctx, env.Client, tmpl, ns, i)
	if err != nil {
		return err
	}
	return env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: it.Name + "-token", Namespace: ns,
			Labels: map[string]string{
				kommov1.LabelManagedBy: kommov1.ManagedByValue, kommov1.LabelIntegration: it.Spec.IntegrationRef.Name,
				kommov1.LabelAccountID: it.Labels[kommov1.LabelAccountID],
			},
			Annotations: map[string]string{"kommo-operator.io/authorization": it.Spec.Authorization.ReceivedAt.UTC().Format(time.RFC3339Nano)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: kommov1.GroupVersion.String(), Kind: "KommoInstallation", Name: it.Name, UID: it.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Type: kommov1.SecretTypeToken,
		Data: map[string][]byte{kommov1.TokenKeyAccessToken: []byte("a"), kommov1.TokenKeyRefreshToken: []byte("r")},
	})
}
