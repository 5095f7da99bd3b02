package controllers

import (
	"context"
	"errors"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommointegrations,verbs=get;list;watch
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommointegrations/status,verbs=get;patch;update

// integrationRecheck is how often a KommoIntegration's Secrets are checked again: they
// are not the operator's, so they are not watched.
const integrationRecheck = 5 * time.Minute

// IntegrationReconciler reports whether a KommoIntegration's referenced Secrets exist and
// publishes its effective settings. Changes reach installations through their own watch.
type IntegrationReconciler struct {
	client.Client
	// APIReader reads the referenced Secrets live.
	APIReader client.Reader
}

// SetupWithManager registers the reconciler.
func (r *IntegrationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("kommointegration").
		For(&kommov1.KommoIntegration{}).
		Complete(r)
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
	for _, ref := range refs {
		if _, err := secretValue(ctx, r.APIReader, integration.Namespace, ref); err != nil {
			var m *errSecretMissing
			if !errors.As(err, &m) {
				return ctrl.Result{}, err
			}
			missing = append(missing, m.Error())
		}
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

	if !equality.Semantic.DeepEqual(original.Status, integration.Status) {
		if err := r.Status().Patch(ctx, integration, client.MergeFrom(original)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return ctrl.Result{RequeueAfter: integrationRecheck}, nil
}
