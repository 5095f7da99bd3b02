package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// errSecretMissing says which referenced Secret or key is missing; never its content.
type errSecretMissing struct{ namespace, name, key string }

func (e *errSecretMissing) Error() string {
	return fmt.Sprintf("Secret %s/%s has no key %q", e.namespace, e.name, e.key)
}

// secretValue reads one key of a Secret the operator does not own, live: such Secrets are
// not in the cache, which holds only the operator's own.
func secretValue(ctx context.Context, reader client.Reader, namespace string, ref kommov1.SecretKeyRef) (string, error) {
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &errSecretMissing{namespace, ref.Name, ref.Key}
		}
		return "", err
	}
	v, ok := secret.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", &errSecretMissing{namespace, ref.Name, ref.Key}
	}
	return string(v), nil
}
