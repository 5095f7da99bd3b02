package controllers

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// InstallationReconciler keeps each KommoInstallation working. Its concerns are
// independent: the revocation check, the grant (the latest install's exchange and the
// refresh of the tokens that work), the account lookup and the channel each decide their
// own next step, none can stop another, and Ready summarises them in one status patch.
type InstallationReconciler struct {
	// Client reads from the cache: KommoIntegrations, KommoInstallations and the metadata
	// of the Secrets labelled as the operator's.
	client.Client
	// APIReader reads from the API server: Secrets the operator does not own, and the
	// installation and its token Secret right before a single-use call.
	APIReader client.Reader
	Kommo     *kommo.Client
	Recorder  recorder.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1) that spreads refresh times; nil means math/rand.
	Jitter func() float64
	// BackoffScale multiplies the persisted backoff after Kommo failures; 0 means 1.
	BackoffScale float64
	// SingleUse runs the calls that spend a code or a refresh token.
	SingleUse *SingleUse
	// Replica names this process in the refresh fence on token Secrets.
	Replica string

	// unsaved holds tokens Kommo issued that could not be written to the API server even
	// after retries. The next reconcile of that installation writes them before anything
	// else: a refresh token is single-use, losing it loses the install.
	unsaved sync.Map // types.NamespacedName → pendingTokens
	// written and writtenTokens hold the versions of this process's latest writes of
	// installations and of token Secrets.
	written, writtenTokens ownWrites
}

// SetupWithManager registers the reconciler. Installations are reconciled when they
// change (spec, labels or annotations: status writes of our own are ignored), when their
// token Secret changes, and when their KommoIntegration changes (its status included: a
// new configVersion ends a configuration backoff). On the priority queue, new installs
// and reinstalls go before routine upkeep (see priority.go).
func (r *InstallationReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("kommoinstallation").
		For(&kommov1.KommoInstallation{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&kommov1.KommoIntegration{}, enqueueLowPriority(r.installationsOf)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency, UsePriorityQueue: ptr.To(true)}).
		Complete(routineRequeues{r})
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

// concern is one independent part of an installation's upkeep. It records what it did
// and what it waits for on the scope (status, requeue); an error is an API server error,
// retried by the workqueue. A concern that cannot act skips itself.
type concern func(ctx context.Context, s *installationScope) error

// Reconcile runs every concern and patches metadata and status once at the end.
func (r *InstallationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	inst := &kommov1.KommoInstallation{}
	if err := r.Get(ctx, req.NamespacedName, inst); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: what this process wrote of it and of its token Secret no longer matters.
			r.written.forget(req.NamespacedName)
			r.writtenTokens.forget(types.NamespacedName{Namespace: req.Namespace, Name: tokenSecretName(req.Name)})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.written.behind(inst, time.Now()) {
		// The cache has not seen this process's last write of the installation yet.
		return ctrl.Result{RequeueAfter: staleCacheRetry}, nil
	}
	if !installing(inst) {
		ctx = kommo.Routine(ctx)
	}
	s := newScope(inst, r.now())
	s.secrets = newSecretsReadOnce(r.APIReader)
	defer func() {
		switch {
		case s.stale && retErr == nil:
			res = ctrl.Result{RequeueAfter: staleCacheRetry}
			return
		case s.gone:
			return
		case retErr == nil && !inst.DeletionTimestamp.IsZero() && len(inst.Finalizers) == 0:
			// Only the metadata patch matters: the object is gone once it lands.
			retErr = r.patchMetadata(ctx, s)
			return
		}
		summarize(s)
		if retErr == nil {
			inst.Status.ObservedGeneration = inst.Generation
		}
		patchCtx := ctx
		if s.spent && ctx.Err() != nil {
			// Shutting down after a code or refresh token was spent: record the outcome
			// (installedAt, the refresh plan) so the next leader need not infer it.
			var cancel context.CancelFunc
			patchCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
		}
		retErr = errors.Join(retErr, r.patch(patchCtx, s))
		res = ctrl.Result{RequeueAfter: s.requeueAfter}
		if s.stale && retErr == nil {
			res = ctrl.Result{RequeueAfter: staleCacheRetry}
		}
	}()

	if inst.Status.AccountDomain == "" {
		inst.Status.AccountDomain = inst.Spec.AccountDomain
	}
	if !inst.DeletionTimestamp.IsZero() {
		s.notReady(kommov1.ReasonDeleting, "Disconnecting the channel before the installation goes")
		return ctrl.Result{}, r.reconcileDelete(ctx, s)
	}
	if inst.Annotations[kommov1.AnnotationPaused] == "true" {
		s.notReady(kommov1.ReasonPaused, "The "+kommov1.AnnotationPaused+" annotation is set")
		return ctrl.Result{}, nil
	}
	if ok, err := r.loadIntegration(ctx, s); !ok || err != nil {
		return ctrl.Result{}, err
	}
	if err := r.loadTokens(ctx, s); err != nil || s.stale {
		return ctrl.Result{}, err
	}
	adoptLegacyStatus(s)
	if err := r.saveUnsavedTokens(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	for _, c := range []concern{
		r.reconcileRevocation,
		r.reconcileGrant,
		r.reconcileAccount,
		r.reconcileChannel,
		r.reconcileSources,
		r.syncTokenSecret,
		r.collectFailedInstall,
	} {
		if err := c(ctx, s); err != nil {
			errs = append(errs, err)
		}
		if s.stale || s.gone {
			// The cache is behind (nothing is written; the pass runs again) or the
			// installation was deleted.
			return ctrl.Result{}, nil
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// staleCacheRetry is how soon a pass that found the cache behind runs again.
const staleCacheRetry = 200 * time.Millisecond

// patch writes what the reconcile changed: labels and finalizers with an optimistic lock
// (the webhook writes the same object), then the status, which only the controller writes.
func (r *InstallationReconciler) patch(ctx context.Context, s *installationScope) error {
	if err := r.patchMetadata(ctx, s); err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(s.original.Status, s.inst.Status) {
		return nil
	}
	// Optimistic: a status computed from a cache that is behind (it has not seen our last
	// patch yet) must not overwrite the newer one; such a pass runs again.
	err := r.Status().Patch(ctx, s.inst, client.MergeFromWithOptions(s.original, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		s.stale = true
		return nil
	case err != nil:
		return client.IgnoreNotFound(err)
	}
	s.original.Status = *s.inst.Status.DeepCopy()
	r.written.wrote(s.inst, time.Now())
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
	s.liveVersion = obj.ResourceVersion
	r.written.wrote(obj, time.Now())
	return nil
}

// liveCheck guards single-use calls: the installation is read from the API server, and
// when the cache is behind it an earlier reconcile's outcome (an exchange, a refresh, a
// failed attempt) is not visible yet, so the call could repeat it. Such a pass stops
// without writing (s.stale) and runs again shortly. The read is made once a pass: the
// pass writes the installation only at its end, or through patchMetadata, which confirms
// the new version itself. Only the metadata is read: its resourceVersion says whether
// the cache holds what the API server does, and the rest of the object would be JSON
// decoded for nothing (a read of a Ready installation allocates 29 KB instead of 35 KB).
func (r *InstallationReconciler) liveCheck(ctx context.Context, s *installationScope) (bool, error) {
	if s.liveVersion != "" && s.liveVersion == s.original.ResourceVersion {
		return true, nil
	}
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(kommov1.GroupVersion.WithKind("KommoInstallation"))
	if err := r.APIReader.Get(ctx, r.key(s), live); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if live.ResourceVersion != s.original.ResourceVersion {
		s.stale = true
		return false, nil
	}
	s.liveVersion = live.ResourceVersion
	return true, nil
}

// readyToSpend is what precedes every single-use call: concern's backoff has run out, the
// cache is not behind, and the client secret is at hand. The cache is checked first: a
// pass woken by the token Secret its predecessor wrote often finds the installation's
// cache behind, and then stops after one read.
func (r *InstallationReconciler) readyToSpend(ctx context.Context, s *installationScope, concern string) (kommo.App, bool, error) {
	if r.waiting(s, concern) {
		return kommo.App{}, false, nil
	}
	if ok, err := r.liveCheck(ctx, s); !ok || err != nil {
		return kommo.App{}, false, err
	}
	return r.credentials(ctx, s)
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
