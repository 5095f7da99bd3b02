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
	secret, err := referencedSecret(ctx, reader, namespace, ref)
	if err != nil {
		return "", err
	}
	return string(secret.Data[ref.Key]), nil
}

// referencedSecret reads the Secret ref names, live; an *errSecretMissing when it or its
// key is missing or empty.
func referencedSecret(ctx context.Context, reader client.Reader, namespace string, ref kommov1.SecretKeyRef) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &errSecretMissing{namespace, ref.Name, ref.Key}
		}
		return nil, err
	}
	if len(secret.Data[ref.Key]) == 0 {
		return nil, &errSecretMissing{namespace, ref.Name, ref.Key}
	}
	return secret, nil
}

// secretsReadOnce reads each Secret from the API server at most once: a reconcile that
// needs several keys of one Secret reads it once.
type secretsReadOnce struct {
	client.Reader
	read map[types.NamespacedName]secretRead
}

type secretRead struct {
	secret *corev1.Secret
	err    error
}

func newSecretsReadOnce(reader client.Reader) *secretsReadOnce {
	return &secretsReadOnce{Reader: reader, read: map[types.NamespacedName]secretRead{}}
}

func (r *secretsReadOnce) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return r.Reader.Get(ctx, key, obj, opts...)
	}
	got, seen := r.read[key]
	if !seen {
		got.secret = &corev1.Secret{}
		got.err = r.Reader.Get(ctx, key, got.secret, opts...)
		r.read[key] = got
	}
	if got.err == nil {
		got.secret.DeepCopyInto(secret)
	}
	return got.err
}
