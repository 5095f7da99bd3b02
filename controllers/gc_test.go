package controllers_test

import (
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// TestTokenSecretGoesWithItsInstallation deletes a working installation with a connected
// channel and lets kube-controller-manager's garbage collector act on the token Secret's
// ownerReference, as in a cluster: the Secret is gone after the channel is disconnected,
// and the token Secret of another installation stays.
func TestTokenSecretGoesWithItsInstallation(t *testing.T) {
	env.GarbageCollector(t)
	h := newHarness(t, harnessOptions{})
	name, other := h.install("acme.kommo.com"), h.install("beta.kommo.com")
	inst := h.waitReady(name)
	h.waitReady(other)
	secret := h.tokenSecret(name)
	if secret == nil {
		t.Fatal("no token Secret")
	}
	if ref := metav1.GetControllerOf(secret); ref == nil || ref.UID != inst.UID || ref.Kind != "KommoInstallation" {
		t.Fatalf("token Secret's controller reference %+v, want the installation %s", ref, inst.UID)
	}

	if err := env.Client.Delete(h.ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.eventually("the installation and its token Secret gone", func() (bool, string) {
		err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(inst), &kommov1.KommoInstallation{})
		if !apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("installation: %v", err)
		}
		if s := h.tokenSecret(name); s != nil {
			return false, "token Secret still there"
		}
		return true, ""
	})
	if n := h.sim.CallCount("disconnect", ""); n != 1 {
		t.Errorf("%d disconnects before the token Secret went", n)
	}
	if h.tokenSecret(other) == nil {
		t.Error("the other installation's token Secret was collected too")
	}
}
