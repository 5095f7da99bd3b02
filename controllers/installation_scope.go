package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// installationScope is everything one reconcile of one installation works with. Concerns
// read and change it; the status is patched once at the end.
type installationScope struct {
	inst     *kommov1.KommoInstallation
	original *kommov1.KommoInstallation
	now      time.Time

	integration *kommov1.KommoIntegration
	// chat is the effective channel configuration, nil when the integration has none.
	chat *kommov1.ChatStatus
	// app holds the integration's OAuth credentials once read (live, on first need).
	app *kommo.App
	// secrets reads the Secrets the installation refers to (the integration's, the
	// install's code, a long-lived token) live, each at most once a pass.
	secrets *secretsReadOnce
	// tokens are the grant as held in the token Secret, nil when there is none.
	tokens *tokens

	// authorizedOverride and channel are conditions a concern set this pass (a missing
	// Secret, a wait); nil when the status tells it all.
	authorizedOverride *metav1.Condition
	channel            *metav1.Condition
	// ready, when set, overrides the Ready summary (integration missing, paused, ...).
	ready *metav1.Condition

	requeueAfter time.Duration
	// stale is set when the cache turned out to be behind the API server: nothing is
	// written and the installation is reconciled again from fresh data.
	stale bool
	// gone is set when the reconcile deleted the installation.
	gone bool
	// renameTried is set once this pass asked Kommo where the account lives now.
	renameTried bool
	// liveVersion is the installation's resourceVersion as this pass last confirmed it on
	// the API server (a live read, or its own optimistically locked write): a later
	// liveCheck in the same pass needs no read while nothing else was written.
	liveVersion string
	// tokenSecret is the token Secret as this pass last read it live or wrote it (nil:
	// there was none), when tokenSecretKnown; not known until then or after a failed
	// write. A later write in the same pass starts from it instead of reading again, and
	// its resourceVersion precondition (or, for a create, AlreadyExists) fails it if
	// anyone else wrote meanwhile.
	tokenSecret      *corev1.Secret
	tokenSecretKnown bool
	// cachedTokenSecret is the token Secret's metadata as the cache had it at the start.
	cachedTokenSecret *metav1.ObjectMeta
	// tokenVersion is the token Secret's resourceVersion that tokens describe.
	tokenVersion string
	// tokensConfirmed is the token Secret version this pass confirmed holds status's
	// account facts, "" when it did not look.
	tokensConfirmed string
	// spent is set once this pass stored a pair a single-use call produced: its status
	// must land even when the reconcile is being canceled.
	spent bool
}

func newScope(inst *kommov1.KommoInstallation, now time.Time) *installationScope {
	return &installationScope{inst: inst, original: inst.DeepCopy(), now: now}
}

// refreshable reports whether the grant can be refreshed: an exchanged grant has a
// refresh token, a long-lived token none. Before the content is read, the spec tells.
func (s *installationScope) refreshable() bool {
	switch {
	case s.tokens == nil:
		return false
	case s.tokens.Content:
		return s.tokens.RefreshToken != ""
	}
	return s.inst.Spec.LongLivedTokenSecretRef == nil
}

// requeue asks for another reconcile within d (the soonest request wins).
func (s *installationScope) requeue(d time.Duration) {
	if d == forever {
		return
	}
	if d <= 0 {
		d = time.Second
	}
	if s.requeueAfter == 0 || d < s.requeueAfter {
		s.requeueAfter = d
	}
}

// authorized sets the Authorized condition for this pass.
func (s *installationScope) authorized(status metav1.ConditionStatus, reason, message string) {
	s.authorizedOverride = &metav1.Condition{Type: kommov1.ConditionAuthorized, Status: status, Reason: reason, Message: message}
}

// channelPending sets the ChannelConnected condition for this pass.
func (s *installationScope) channelPending(reason, message string) {
	s.channel = &metav1.Condition{Type: kommov1.ConditionChannelConnected, Status: metav1.ConditionFalse, Reason: reason, Message: message}
}

// notReady makes Ready False with reason, whatever the concerns say.
func (s *installationScope) notReady(reason, message string) {
	s.ready = &metav1.Condition{Type: kommov1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: message}
}

// host is the account host the installation talks to: spec.accountDomain until the
// account renames its subdomain.
func (s *installationScope) host() string {
	if h := s.inst.Status.AccountDomain; h != "" {
		return h
	}
	return s.inst.Spec.AccountDomain
}

// configVersion identifies the integration's configuration, as its reconciler publishes it.
func (s *installationScope) configVersion() string { return s.integration.Status.ConfigVersion }

// waiting reports whether concern's persisted backoff still runs, and requeues for its end.
func (r *InstallationReconciler) waiting(s *installationScope, concern string) bool {
	left := BackoffLeft(s.inst.Status.Backoffs, concern, s.configVersion(), s.now, r.BackoffScale)
	if left <= 0 {
		return false
	}
	s.requeue(left)
	return true
}

// failed records a failed Kommo call of concern under reason and requeues for the next
// attempt. A person can act on configuration and block failures: they get a Warning event
// on the first failure of a streak.
func (r *InstallationReconciler) failed(ctx context.Context, s *installationScope, concern, reason string, err error) {
	retryAfter, _ := kommo.RetryAfterOf(err)
	var wait time.Duration
	s.inst.Status.Backoffs, wait = RecordFailure(s.inst.Status.Backoffs, concern, reason, err.Error(), s.configVersion(), s.now, r.BackoffScale, retryAfter)
	s.requeue(wait)
	attempts := findBackoff(s.inst.Status.Backoffs, concern).FailedAttempts
	if event := actionableFailures[reason]; event != "" && attempts == 1 {
		r.Recorder.Eventf(s.inst, nil, corev1.EventTypeWarning, event, "CallKommo", "%v", err)
	}
	retry := "never (a new install is needed)"
	if wait != forever {
		retry = wait.Round(time.Second).String()
	}
	logf.FromContext(ctx).Info("Kommo call failed", "concern", concern, "error", err.Error(), "attempts", attempts, "retryIn", retry)
}

// succeeded ends concern's failure streak.
func (s *installationScope) succeeded(concern string) {
	s.inst.Status.Backoffs = ClearFailure(s.inst.Status.Backoffs, concern)
}

// failing returns concern's backoff entry, nil when it is not failing.
func (s *installationScope) failing(concern string) *kommov1.Backoff {
	return findBackoff(s.inst.Status.Backoffs, concern)
}
