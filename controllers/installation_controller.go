package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// InstallationReconciler keeps each KommoInstallation working: it exchanges the install's
// code for tokens, keeps them fresh in the token Secret, looks up the account, connects
// the chat channel, honours revocation and disconnects on deletion.
type InstallationReconciler struct {
	// Client reads from the cache: KommoIntegrations, KommoInstallations and the Secrets
	// labelled as the operator's.
	client.Client
	// APIReader reads from the API server. Every Secret the operator does not own, and the
	// token Secret before a single-use refresh, is read through it.
	APIReader client.Reader
	Kommo     *kommo.Client
	Recorder  recorder.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1) that spreads refresh times; nil means math/rand.
	Jitter func() float64
	// BackoffScale multiplies the persisted backoff after Kommo failures; 0 means 1.
	BackoffScale float64

	// unsaved holds tokens Kommo issued that could not be written to the API server even
	// after retries. The next reconcile of that installation writes them before anything
	// else: a refresh token is single-use, losing it loses the install.
	unsaved sync.Map // types.NamespacedName → tokens
	// warned remembers revocations already reported as invalid, so the Warning is raised
	// once per hook rather than once per reconcile.
	warned sync.Map // types.NamespacedName → revocation receivedAt
}

// SetupWithManager registers the reconciler. Installations are reconciled when they
// change (spec or annotations: status writes of our own are ignored), when their token
// Secret changes, and when their KommoIntegration changes.
func (r *InstallationReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("kommoinstallation").
		For(&kommov1.KommoInstallation{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Watches(&kommov1.KommoIntegration{}, handler.EnqueueRequestsFromMapFunc(r.installationsOf)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
}

// installationsOf maps a KommoIntegration to its installations.
func (r *InstallationReconciler) installationsOf(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &kommov1.KommoInstallationList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace()),
		client.MatchingLabels{kommov1.LabelIntegration: obj.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Listing installations of an integration", "integration", obj.GetName())
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for _, inst := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&inst)})
	}
	return reqs
}

// installationScope is everything one reconcile of one installation works with. Phases
// read and change it; the status is patched once at the end.
type installationScope struct {
	inst     *kommov1.KommoInstallation
	original *kommov1.KommoInstallation
	now      time.Time

	integration *kommov1.KommoIntegration
	app         kommo.App
	// chat is the effective channel configuration, nil when the integration has none.
	chat *kommov1.ChatStatus
	// tokens are the current tokens, nil when there are none (yet).
	tokens *tokens
	// fresh is true while the current install (or long-lived token) is not fully
	// processed: the account is looked up and the channel connected again.
	fresh bool

	requeueAfter time.Duration
	// clean stays true when the pass processed the generation without waiting on Kommo
	// or on a missing dependency; only then is observedGeneration advanced.
	clean bool
	// ready, when set, overrides the Ready summary (integration missing, paused, ...).
	ready *metav1.Condition
	// stale is set when the cache turned out to be behind the API server: nothing is
	// written and the installation is reconciled again from fresh data.
	stale bool
}

// requeue asks for another reconcile within d (the soonest request wins).
func (s *installationScope) requeue(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if s.requeueAfter == 0 || d < s.requeueAfter {
		s.requeueAfter = d
	}
}

// setCondition sets a condition of the installation at its current generation.
func (s *installationScope) setCondition(typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.inst.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: s.inst.Generation,
	})
}

// notReady makes Ready False with reason, whatever the other conditions say.
func (s *installationScope) notReady(reason, message string) {
	s.ready = &metav1.Condition{Type: kommov1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: message}
}

// phase is one step of a reconcile. stop ends the pass (the rest cannot proceed yet);
// err is an API server error, retried by the workqueue with its own backoff.
type phase func(ctx context.Context, s *installationScope) (stop bool, err error)

// Reconcile runs the phases in order and patches metadata and status once at the end.
func (r *InstallationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	inst := &kommov1.KommoInstallation{}
	if err := r.Get(ctx, req.NamespacedName, inst); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &installationScope{inst: inst, original: inst.DeepCopy(), now: r.now(), clean: true}
	defer func() {
		if s.stale && retErr == nil {
			res = ctrl.Result{RequeueAfter: staleCacheRetry}
			return
		}
		if retErr == nil && !inst.DeletionTimestamp.IsZero() && len(inst.Finalizers) == 0 {
			// Only the metadata patch matters: the object is gone once it lands.
			retErr = r.patchMetadata(ctx, s)
			return
		}
		r.summarize(s)
		if retErr == nil && s.clean {
			inst.Status.ObservedGeneration = inst.Generation
		}
		retErr = errors.Join(retErr, r.patch(ctx, s))
	}()

	if inst.Status.FailedAttempts > 0 && inst.Status.FailedGeneration != inst.Generation {
		// The spec changed since the failures: start the backoff over.
		inst.Status.FailedAttempts = 0
	}
	if inst.Status.AccountDomain == "" {
		inst.Status.AccountDomain = inst.Spec.AccountDomain
	}
	if !inst.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	if inst.Annotations[kommov1.AnnotationPaused] == "true" {
		s.notReady(kommov1.ReasonPaused, "The "+kommov1.AnnotationPaused+" annotation is set")
		s.clean = false
		return ctrl.Result{}, nil
	}
	if meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionAuthorized) == nil {
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionUnknown, kommov1.ReasonReconciling, "Reconciling")
	}

	for _, p := range []phase{
		r.loadIntegration,
		r.saveUnsavedTokens,
		r.reconcileRevocation,
		r.reconcileAuthorization,
		r.reconcileAccount,
		r.reconcileChannel,
		r.reconcileRefresh,
		r.reconcileTokenSecret,
		r.completeInstall,
	} {
		stop, err := p(ctx, s)
		if err != nil {
			s.clean = false
			return ctrl.Result{}, err
		}
		if stop {
			break
		}
	}
	return ctrl.Result{RequeueAfter: s.requeueAfter}, nil
}

// staleCacheRetry is how soon a pass that found the cache behind runs again.
const staleCacheRetry = 200 * time.Millisecond

// summarize sets Ready from the other conditions: True only when authorized and, with
// chat, connected; otherwise False with the reason of what is in the way.
func (r *InstallationReconciler) summarize(s *installationScope) {
	ready := s.ready
	if ready == nil {
		ready = &metav1.Condition{Status: metav1.ConditionTrue, Reason: kommov1.ReasonReady, Message: "Authorized"}
		auth := meta.FindStatusCondition(s.inst.Status.Conditions, kommov1.ConditionAuthorized)
		channel := meta.FindStatusCondition(s.inst.Status.Conditions, kommov1.ConditionChannelConnected)
		switch {
		case auth == nil:
			ready.Status, ready.Reason, ready.Message = metav1.ConditionUnknown, kommov1.ReasonReconciling, "Reconciling"
		case auth.Status != metav1.ConditionTrue:
			ready.Status, ready.Reason, ready.Message = auth.Status, auth.Reason, auth.Message
		case channel != nil && channel.Status != metav1.ConditionTrue:
			ready.Status, ready.Reason, ready.Message = channel.Status, channel.Reason, channel.Message
		case channel != nil:
			ready.Message = "Authorized and channel connected"
		}
	}
	s.setCondition(kommov1.ConditionReady, ready.Status, ready.Reason, ready.Message)
}

// patch writes what the reconcile changed: labels and finalizers with an optimistic lock
// (the webhook writes the same object), then the status, which only the controller writes.
func (r *InstallationReconciler) patch(ctx context.Context, s *installationScope) error {
	if err := r.patchMetadata(ctx, s); err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(s.original.Status, s.inst.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, s.inst, client.MergeFrom(s.original)); err != nil {
		return client.IgnoreNotFound(err)
	}
	s.original.Status = *s.inst.Status.DeepCopy()
	return nil
}

// patchMetadata writes changed labels and finalizers at once and remembers them as
// persisted, so that a later patch in the same reconcile does not repeat them.
func (r *InstallationReconciler) patchMetadata(ctx context.Context, s *installationScope) error {
	if equality.Semantic.DeepEqual(s.original.Labels, s.inst.Labels) &&
		equality.Semantic.DeepEqual(s.original.Finalizers, s.inst.Finalizers) {
		return nil
	}
	obj := s.inst.DeepCopy()
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(s.original, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	s.original.Labels, s.original.Finalizers = obj.Labels, obj.Finalizers
	s.original.ResourceVersion = obj.ResourceVersion
	s.inst.ResourceVersion = obj.ResourceVersion
	return nil
}

// backoff is Backoff scaled by BackoffScale, still never shorter than Kommo's retryAfter.
func (r *InstallationReconciler) backoff(class failureClass, attempts int32, retryAfter time.Duration) time.Duration {
	d := Backoff(class, attempts, 0)
	if r.BackoffScale > 0 {
		d = time.Duration(float64(d) * r.BackoffScale)
	}
	return max(d, retryAfter)
}

func (r *InstallationReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *InstallationReconciler) key(s *installationScope) types.NamespacedName {
	return client.ObjectKeyFromObject(s.inst)
}

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
