package controllers

import (
	"encoding/json"
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// TestInternStringsChangesNoValue: the cache's transform drops managedFields and
// nothing else, and two installations decoded apart share their repeated strings after it.
func TestInternStringsChangesNoValue(t *testing.T) {
	decode := func() *kommov1.KommoInstallation {
		it := testenv.ReadyInstallation(t)
		it.Namespace = "tenant-a"
		it.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
		it.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kommo-operator-webhook"}}
		it.Status.Backoffs = []kommov1.Backoff{{Concern: "Sources", Reason: "KommoUnavailable", Message: "Kommo answered 503"}}
		it.Status.LastRevocation = &kommov1.Outcome{Result: kommov1.OutcomeIgnored, Reason: "Superseded"}
		return it
	}
	a, b := decode(), decode()
	want := a.DeepCopy()
	want.ManagedFields = nil
	for _, it := range []*kommov1.KommoInstallation{a, b} {
		if _, err := internStrings(it); err != nil {
			t.Fatal(err)
		}
	}
	if !equality.Semantic.DeepEqual(a, want) {
		t.Fatalf("the transform changed the installation:\n got %+v\nwant %+v", a, want)
	}
	shared := map[string][2]string{
		"namespace":            {a.Namespace, b.Namespace},
		"finalizer":            {a.Finalizers[0], b.Finalizers[0]},
		"integration":          {a.Spec.IntegrationRef.Name, b.Spec.IntegrationRef.Name},
		"condition reason":     {a.Status.Conditions[4].Reason, b.Status.Conditions[4].Reason},
		"condition message":    {a.Status.Conditions[4].Message, b.Status.Conditions[4].Message},
		"channel":              {a.Status.ConnectedChannel.ChannelID, b.Status.ConnectedChannel.ChannelID},
		"attempt message":      {a.Status.LastAttempt.Message, b.Status.LastAttempt.Message},
		"backoff message":      {a.Status.Backoffs[0].Message, b.Status.Backoffs[0].Message},
		"source":               {a.Status.Sources[0].ExternalID, b.Status.Sources[0].ExternalID},
		"declarations":         {a.Status.SourcesSynced.Declarations, b.Status.SourcesSynced.Declarations},
		"status's domain":      {a.Status.AccountDomain, a.Spec.AccountDomain},
		"label value":          {a.Labels[kommov1.LabelIntegration], b.Labels[kommov1.LabelIntegration]},
		"revocation reason":    {a.Status.LastRevocation.Reason, b.Status.LastRevocation.Reason},
		"channel's secret key": {a.Status.ConnectedChannel.SecretRef.Key, b.Status.ConnectedChannel.SecretRef.Key},
	}
	for what, s := range shared {
		if unsafe.StringData(s[0]) != unsafe.StringData(s[1]) {
			t.Errorf("the %s %q is held twice", what, s[0])
		}
	}
}

// TestInternStringsOfMetadata: Secrets are cached as metadata; theirs is interned too,
// and annotation values (often large and unique) are left as they are.
func TestInternStringsOfMetadata(t *testing.T) {
	meta := func() *metav1.PartialObjectMetadata {
		m := &metav1.PartialObjectMetadata{}
		if err := json.Unmarshal([]byte(`{"metadata":{"name":"x-token","namespace":"tenant-a",
			"labels":{"kommo-operator.io/integration":"wa-bridge"},
			"annotations":{"kommo-operator.io/authorization":"2026-12-03T10:03:04.244185Z"},
			"ownerReferences":[{"apiVersion":"kommo-operator.io/v1alpha1","kind":"KommoInstallation","name":"x","uid":"u"}],
			"managedFields":[{"manager":"kommo-operator-controller"}]}}`), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := meta(), meta()
	want := a.DeepCopy()
	want.ManagedFields = nil
	for _, m := range []*metav1.PartialObjectMetadata{a, b} {
		if _, err := internStrings(m); err != nil {
			t.Fatal(err)
		}
	}
	if !equality.Semantic.DeepEqual(a, want) {
		t.Fatalf("the transform changed the metadata:\n got %+v\nwant %+v", a, want)
	}
	if unsafe.StringData(a.OwnerReferences[0].Kind) != unsafe.StringData(b.OwnerReferences[0].Kind) ||
		unsafe.StringData(a.Labels[kommov1.LabelIntegration]) != unsafe.StringData(b.Labels[kommov1.LabelIntegration]) {
		t.Error("the owner's kind or the integration label is held twice")
	}
	if unsafe.StringData(a.Annotations[annotationAuthorization]) == unsafe.StringData(b.Annotations[annotationAuthorization]) {
		t.Error("an annotation value was interned")
	}
}

// BenchmarkInternStrings measures the transform's cost per watch event of a Ready
// installation, beside decoding the event's object ("decode"), which every event pays.
func BenchmarkInternStrings(b *testing.B) {
	raw, err := json.Marshal(testenv.ReadyInstallation(b))
	if err != nil {
		b.Fatal(err)
	}
	decode := func(b *testing.B) *kommov1.KommoInstallation {
		it := &kommov1.KommoInstallation{}
		if err := json.Unmarshal(raw, it); err != nil {
			b.Fatal(err)
		}
		return it
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decode(b)
		}
	})
	b.Run("decode and intern", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := internStrings(decode(b)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
