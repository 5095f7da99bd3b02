package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

func TestExpiredCodeSecrets(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	owner := func(kind string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: kommov1.GroupVersion.String(), Kind: kind, Name: "x"}}
	}
	secret := func(name, ownerKind string, age time.Duration) metav1.PartialObjectMetadata {
		return metav1.PartialObjectMetadata{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age)), OwnerReferences: owner(ownerKind)},
		}
	}
	code := func(name string) string { return kommov1.CodeSecretPrefix + name }
	secrets := []metav1.PartialObjectMetadata{
		secret(code("superseded"), "KommoIntegration", time.Hour),
		secret(code("current"), "KommoIntegration", time.Hour),
		secret(code("in-flight"), "KommoIntegration", 19*time.Minute),
		secret(code("just-expired"), "KommoIntegration", 20*time.Minute),
		secret("acme-token", "KommoInstallation", time.Hour),
		secret("not-a-code", "KommoIntegration", time.Hour),
	}
	installations := []kommov1.KommoInstallation{
		{Spec: kommov1.KommoInstallationSpec{Authorization: &kommov1.Authorization{CodeSecretRef: kommov1.SecretKeyRef{Name: code("current")}}}},
		{Spec: kommov1.KommoInstallationSpec{}},
	}
	var got []string
	for _, s := range expiredCodeSecrets(secrets, installations, now) {
		got = append(got, s.Name)
	}
	if len(got) != 2 || got[0] != code("superseded") || got[1] != code("just-expired") {
		t.Errorf("expired code Secrets = %v, want the superseded and the just expired", got)
	}
}
