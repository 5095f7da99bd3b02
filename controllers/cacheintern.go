package controllers

import (
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// stripManagedFields is controller-runtime's transform that drops managedFields.
var stripManagedFields = cache.TransformStripManagedFields()

// internStrings is the transform of the controller's cache: it drops managedFields, and
// makes the strings that repeat across objects (the namespace, label and annotation keys,
// finalizers, owners' kinds, condition types, reasons and messages, the channel, the
// sources' ids) share one copy. Every object decoded from a watch holds its own copy of
// each otherwise, and the cache holds every installation and its token Secret's
// metadata. The strings are Go's canonical ones (unique), which are freed once no cached
// object holds them; strings are immutable, so sharing them changes no value.
func internStrings(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if err != nil {
		return obj, err
	}
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if m, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			internMeta(m)
		}
	}
	if it, ok := obj.(*kommov1.KommoInstallation); ok {
		internInstallation(it)
	}
	return obj, nil
}

func intern(s *string) { *s = unique.Make(*s).Value() }

func internMeta(m *metav1.ObjectMeta) {
	intern(&m.Namespace)
	for i := range m.Finalizers {
		intern(&m.Finalizers[i])
	}
	for i := range m.OwnerReferences {
		intern(&m.OwnerReferences[i].APIVersion)
		intern(&m.OwnerReferences[i].Kind)
	}
	m.Labels = internedMap(m.Labels, true)
	// Annotation values are often large and unique (kubectl's last-applied configuration).
	m.Annotations = internedMap(m.Annotations, false)
}

// internedMap is m with its keys, and its values when values is true, interned. The
// map is rebuilt: a decoded map's keys cannot be replaced in place.
func internedMap(m map[string]string, values bool) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if values {
			intern(&v)
		}
		out[unique.Make(k).Value()] = v
	}
	return out
}

func internInstallation(it *kommov1.KommoInstallation) {
	sp, st := &it.Spec, &it.Status
	intern(&sp.IntegrationRef.Name)
	if a := sp.Authorization; a != nil {
		intern(&a.CodeSecretRef.Key)
	}
	if st.AccountDomain == sp.AccountDomain { // equal, but decoded twice: keep one
		st.AccountDomain = sp.AccountDomain
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		intern(&c.Type)
		c.Status = metav1.ConditionStatus(unique.Make(string(c.Status)).Value())
		intern(&c.Reason)
		intern(&c.Message) // some hold a time; sharing the rest still saves more (measured)
	}
	if ch := st.ConnectedChannel; ch != nil {
		intern(&ch.ChannelID)
		intern(&ch.Title)
		intern(&ch.HookAPIVersion)
		if ch.SecretRef != nil {
			intern(&ch.SecretRef.Name)
			intern(&ch.SecretRef.Key)
		}
	}
	for _, o := range []*kommov1.Outcome{st.LastAttempt, st.LastRevocation} {
		if o != nil {
			intern(&o.Result)
			intern(&o.Reason)
			intern(&o.Message)
		}
	}
	for i := range st.Backoffs {
		b := &st.Backoffs[i]
		intern(&b.Concern)
		intern(&b.Reason)
		intern(&b.Message)
		intern(&b.ConfigVersion)
	}
	for i := range st.Sources {
		s := &st.Sources[i]
		intern(&s.ExternalID)
		intern(&s.PipelineName)
		intern(&s.Ownership)
	}
	if s := st.SourcesSynced; s != nil {
		intern(&s.Declarations)
	}
}
