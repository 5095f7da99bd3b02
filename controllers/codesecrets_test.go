package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

func TestExpiredCodeSecrets(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	secret := func(name string, typ corev1.SecretType, age time.Duration) corev1.Secret {
		return corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Type:       typ,
		}
	}
	secrets := []corev1.Secret{
		secret("superseded", kommov1.SecretTypeAuthorizationCode, time.Hour),
		secret("current", kommov1.SecretTypeAuthorizationCode, time.Hour),
		secret("in-flight", kommov1.SecretTypeAuthorizationCode, 19*time.Minute),
		secret("just-expired", kommov1.SecretTypeAuthorizationCode, 20*time.Minute),
		secret("tokens", kommov1.SecretTypeToken, time.Hour),
	}
	installations := []kommov1.KommoInstallation{
		{Spec: kommov1.KommoInstallationSpec{Authorization: &kommov1.Authorization{CodeSecretRef: kommov1.SecretKeyRef{Name: "current"}}}},
		{Spec: kommov1.KommoInstallationSpec{}},
	}
	var got []string
	for _, s := range expiredCodeSecrets(secrets, installations, now) {
		got = append(got, s.Name)
	}
	if len(got) != 2 || got[0] != "superseded" || got[1] != "just-expired" {
		t.Errorf("expired code Secrets = %v, want [superseded just-expired]", got)
	}
}
