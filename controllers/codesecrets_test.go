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
	secrets := []metav1.PartialObjectMetadata{
		secret("superseded", "KommoIntegration", time.Hour),
		secret("current", "KommoIntegration", time.Hour),
		secret("in-flight", "KommoIntegration", 19*time.Minute),
		secret("just-expired", "KommoIntegration", 20*time.Minute),
		secret("tokens", "KommoInstallation", time.Hour),
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
