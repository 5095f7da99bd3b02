package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommointegrations,verbs=get;list;watch
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommointegrations/status,verbs=get;patch;update

// integrationRecheck is how often a KommoIntegration's Secrets are read again: they are
// not the operator's, so they are neither watched nor cached, and a fix of one must end
// the installations' configuration backoff within seconds.
const integrationRecheck = 10 * time.Second

// codeSecretCollection is how often an integration's expired code Secrets are looked for:
// it lists all of the integration's installations, too costly for every recheck.
const codeSecretCollection = 5 * time.Minute

// IntegrationReconciler reports whether a KommoIntegration's referenced Secrets exist and
// publishes its effective settings. Changes reach installations through their own watch.
type IntegrationReconciler struct {
	client.Client
	// APIReader reads the referenced Secrets live.
	APIReader client.Reader

	// collected remembers when each integration's code Secrets were last collected.
	collected sync.Map // types.NamespacedName → time.Time
}

// SetupWithManager registers the reconciler. Its own status writes start no pass: they
// would only read the referenced Secrets again.
func (r *IntegrationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("kommointegration").
		For(&kommov1.KommoIntegration{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Complete(r)
}

// collectCodeSecrets deletes the integration's code Secrets that no installation refers to
// any more and whose code has expired: those of superseded installs, and those a webhook
// created for a write that never completed.
func (r *IntegrationReconciler) collectCodeSecrets(ctx context.Context, integration *kommov1.KommoIntegration) error {
	secrets := &metav1.PartialObjectMetadataList{}
	secrets.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := r.List(ctx, secrets, client.InNamespace(integration.Namespace),
		client.MatchingLabels{kommov1.LabelManagedBy: kommov1.ManagedByValue, kommov1.LabelIntegration: integration.Name}); err != nil {
		return err
	}
	installations := &kommov1.KommoInstallationList{}
	if err := r.List(ctx, installations, client.InNamespace(integration.Namespace),
		client.MatchingLabels{kommov1.LabelIntegration: integration.Name}); err != nil {
		return err
	}
	for _, m := range expiredCodeSecrets(secrets.Items, installations.Items, time.Now()) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name}}
		if err := r.Delete(ctx, secret, client.Preconditions{UID: &m.UID}); client.IgnoreNotFound(err) != nil {
			return err
		}
		logf.FromContext(ctx).Info("Deleted an expired, unreferenced code Secret", "secret", secret.Name)
	}
	return nil
}

// expiredCodeSecrets picks the code Secrets no installation refers to whose code expired.
// Younger ones may belong to an install whose write is still on its way. The cache holds
// only Secret metadata (no type): a code Secret is one the webhook named and made the
// integration's.
func expiredCodeSecrets(secrets []metav1.PartialObjectMetadata, installations []kommov1.KommoInstallation, now time.Time) []*metav1.PartialObjectMetadata {
	referenced := map[string]bool{}
	for _, inst := range installations {
		if auth := inst.Spec.Authorization; auth != nil {
			referenced[auth.CodeSecretRef.Name] = true
		}
	}
	var out []*metav1.PartialObjectMetadata
	for i := range secrets {
		secret := &secrets[i]
		if strings.HasPrefix(secret.Name, kommov1.CodeSecretPrefix) && ownedByIntegration(&secret.ObjectMeta) && !referenced[secret.Name] &&
			now.Sub(secret.CreationTimestamp.Time) >= codeLifetime {
			out = append(out, secret)
		}
	}
	return out
}

// ownedByIntegration reports whether a Secret belongs to a KommoIntegration, as the
// webhook's code Secrets do (token Secrets belong to their installation).
func ownedByIntegration(m *metav1.ObjectMeta) bool {
	for _, ref := range m.OwnerReferences {
		if ref.Kind == "KommoIntegration" && ref.APIVersion == kommov1.GroupVersion.String() {
			return true
		}
	}
	return false
}

// secretVersion reads a referenced Secret live and returns its resource version ("-" when
// it is missing, with an *errSecretMissing).
func secretVersion(ctx context.Context, reader client.Reader, namespace string, ref kommov1.SecretKeyRef) (string, error) {
	secret, err := referencedSecret(ctx, reader, namespace, ref)
	var missing *errSecretMissing
	switch {
	case errors.As(err, &missing):
		return "-", err
	case err != nil:
		return "", err
	}
	return secret.ResourceVersion, nil
}

// configVersion condenses the generation and the Secrets' resource versions into a short
// identifier that changes whenever one of them does.
func configVersion(parts []string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:8])
}

// Reconcile checks every referenced Secret key and patches the status.
func (r *IntegrationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	integration := &kommov1.KommoIntegration{}
	if err := r.Get(ctx, req.NamespacedName, integration); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	original := integration.DeepCopy()
	st := &integration.Status

	refs := []kommov1.SecretKeyRef{integration.Spec.ClientSecretRef}
	if chat := integration.Spec.Chat; chat != nil {
		refs = append(refs, chat.SecretRef)
	}
	if ref := integration.Spec.StateSecretRef; ref != nil {
		refs = append(refs, *ref)
	}
	var missing []string
	versions := []string{strconv.FormatInt(integration.Generation, 10)}
	secrets := newSecretsReadOnce(r.APIReader) // two keys of one Secret cost one read
	for _, ref := range refs {
		version, err := secretVersion(ctx, secrets, integration.Namespace, ref)
		if err != nil {
			var m *errSecretMissing
			if !errors.As(err, &m) {
				return ctrl.Result{}, err
			}
			missing = append(missing, m.Error())
		}
		versions = append(versions, version)
	}
	cond := metav1.Condition{Type: kommov1.ConditionReady, Status: metav1.ConditionTrue, Reason: kommov1.ReasonReady,
		Message: "Every referenced Secret key exists", ObservedGeneration: integration.Generation}
	if len(missing) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, kommov1.ReasonSecretNotFound, strings.Join(missing, "; ")
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	st.AccountDomains = effectiveDomains(integration)
	st.Chat = effectiveChat(integration)
	st.ObservedGeneration = integration.Generation
	st.ConfigVersion = configVersion(versions)

	if last, ok := r.collected.Load(req.NamespacedName); !ok || time.Since(last.(time.Time)) >= codeSecretCollection {
		if err := r.collectCodeSecrets(ctx, integration); err != nil {
			return ctrl.Result{}, err
		}
		r.collected.Store(req.NamespacedName, time.Now())
	}

	if !equality.Semantic.DeepEqual(original.Status, integration.Status) {
		if err := r.Status().Patch(ctx, integration, client.MergeFrom(original)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return ctrl.Result{RequeueAfter: integrationRecheck}, nil
}
