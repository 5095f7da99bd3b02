package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestCodeSecretsGoWithTheirIntegration deletes a KommoIntegration with installs recorded
// for two integrations in one namespace and lets kube-controller-manager's garbage
// collector do what it does in a cluster: the deleted integration's code Secrets go, the
// other's stay.
func TestCodeSecretsGoWithTheirIntegration(t *testing.T) {
	env.GarbageCollector(t)
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	gone := h.createIntegration(ns, "wa-bridge")
	h.createIntegration(ns, "other")

	codeSecret := func(integ, host, code string) client.ObjectKey {
		t.Helper()
		if resp := h.get(redirectPath(ns, integ), installQuery(host, code)); resp.status != http.StatusOK {
			t.Fatalf("install into %s: status %d, body %q", integ, resp.status, resp.body)
		}
		return client.ObjectKey{Namespace: ns, Name: wantSecretName(ns, integ, host, code)}
	}
	doomed := []client.ObjectKey{
		codeSecret("wa-bridge", "acme.kommo.com", testCode("gc-1")),
		codeSecret("wa-bridge", "beta.kommo.com", testCode("gc-2")),
	}
	kept := codeSecret("other", "acme.kommo.com", testCode("gc-3"))
	for _, key := range append(doomed, kept) {
		if err := env.Client.Get(context.Background(), key, &corev1.Secret{}); err != nil {
			t.Fatalf("code Secret %s: %v", key.Name, err)
		}
	}

	if err := env.Client.Delete(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	for _, key := range doomed {
		eventually(t, 60*time.Second, "the garbage collector to delete code Secret "+key.Name, func() bool {
			err := env.Client.Get(context.Background(), key, &corev1.Secret{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			return apierrors.IsNotFound(err)
		})
	}
	// The garbage collector has acted on this namespace: the other integration's code
	// Secret is still there because it belongs to an integration that exists.
	if err := env.Client.Get(context.Background(), kept, &corev1.Secret{}); err != nil {
		t.Errorf("the other integration's code Secret: %v", err)
	}
}
