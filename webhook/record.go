package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// maxConflicts bounds the read-decide-patch rounds of one attempt; the controller
// patching the same object at the same moment is the usual cause.
const maxConflicts = 5

// recordInstall makes one attempt at the writes of an install, in an order that never
// shows the controller a reference to a missing Secret: the code Secret first, then the
// installation. Every step is idempotent, so a retry after any failure is safe.
func (s *Server) recordInstall(ctx context.Context, in install, log logr.Logger) (string, error) {
	if err := s.createCodeSecret(ctx, in); err != nil {
		return "", fmt.Errorf("creating the code Secret: %w", err)
	}
	outcome, err := s.upsertAuthorization(ctx, in, log)
	if err != nil {
		return "", fmt.Errorf("recording the installation: %w", err)
	}
	return outcome, nil
}

// createCodeSecret creates the immutable code Secret. It exists already when the same
// code came before, or an earlier attempt created it: both are fine, its name is a hash
// of the code.
func (s *Server) createCodeSecret(ctx context.Context, in install) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      in.secretName,
			Namespace: in.key.Namespace,
			Labels: map[string]string{
				kommov1.LabelManagedBy:   kommov1.ManagedByValue,
				kommov1.LabelIntegration: in.integration.Name,
			},
			// Garbage-collected with the integration if the controller never gets to it.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: kommov1.GroupVersion.String(),
				Kind:       "KommoIntegration",
				Name:       in.integration.Name,
				UID:        in.integration.UID,
			}},
		},
		Type:      kommov1.SecretTypeAuthorizationCode,
		Immutable: ptr.To(true),
		Data:      map[string][]byte{kommov1.AuthorizationCodeKey: []byte(in.code)},
	}
	if err := s.client.Create(ctx, secret, fieldOwner); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// errBeingDeleted: the installation is being deleted. An install patched onto it would
// go with it, unprocessed; the write is retried (with backoff, for the code's lifetime)
// until the object is gone and can be created anew.
var errBeingDeleted = errors.New("the installation is being deleted; waiting to create it anew")

// upsertAuthorization creates the installation or patches its spec.authorization. A
// patch carries the resourceVersion the decision was made on, so it never overwrites an
// install it has not seen. The same code is a duplicate; a different code always becomes
// the current authorization. Installs are not ordered by receivedAt: replicas' clocks
// differ, and a deferred write that lands late is an install Kommo sent all the same.
func (s *Server) upsertAuthorization(ctx context.Context, in install, log logr.Logger) (string, error) {
	cur := &kommov1.KommoInstallation{}
	// The cache saves a round trip; a stale copy fails the patch's precondition.
	found, live := s.cache.Get(ctx, in.key, cur) == nil, false
	for range maxConflicts {
		if found && cur.DeletionTimestamp != nil {
			if !live {
				// The cache may still hold an object that is gone by now.
				if err := s.apiReader.Get(ctx, in.key, cur); err != nil && !apierrors.IsNotFound(err) {
					return "", err
				} else if err != nil {
					found = false
				}
				live = true
				continue
			}
			log.V(1).Info("Installation is being deleted: waiting to create it anew")
			return "", errBeingDeleted
		}
		if !found {
			err := s.client.Create(ctx, newInstallation(in), fieldOwner)
			if err == nil {
				log.Info("Recorded install")
				return outcomeRecorded, nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return "", err
			}
			if err := s.apiReader.Get(ctx, in.key, cur); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return "", err
			}
			found, live = true, true
			continue
		}
		if a := cur.Spec.Authorization; a != nil && a.CodeSecretRef.Name == in.secretName {
			log.Info("Ignored a duplicate install")
			return outcomeDuplicate, nil
		}
		if a := cur.Spec.Authorization; a != nil && a.ReceivedAt.Time.After(in.receivedAt) {
			// A write deferred through an API server outage must not replace an install
			// received after it (Kommo's newest grant is the one to keep). Replicas' clocks
			// agree to well under the seconds between two installs of one account.
			log.Info("Ignored an install older than the one recorded")
			return outcomeDuplicate, nil
		}
		patch, err := authorizationPatch(cur, in)
		if err != nil {
			return "", err
		}
		err = s.client.Patch(ctx, cur, client.RawPatch(types.MergePatchType, patch), fieldOwner)
		switch {
		case err == nil:
			log.Info("Recorded reinstall")
			return outcomeRecorded, nil
		case apierrors.IsNotFound(err):
			found = false // deleted meanwhile: create it again
		case apierrors.IsConflict(err):
			if err := s.apiReader.Get(ctx, in.key, cur); err != nil {
				if !apierrors.IsNotFound(err) {
					return "", err
				}
				found = false
			}
			live = true
		default:
			return "", err
		}
	}
	return "", apierrors.NewConflict(kommov1.GroupVersion.WithResource("kommoinstallations").GroupResource(), in.key.Name,
		fmt.Errorf("the installation kept changing"))
}

func newInstallation(in install) *kommov1.KommoInstallation {
	return &kommov1.KommoInstallation{
		ObjectMeta: metav1.ObjectMeta{
			Name:      in.key.Name,
			Namespace: in.key.Namespace,
			Labels:    map[string]string{kommov1.LabelIntegration: in.integration.Name},
		},
		Spec: kommov1.KommoInstallationSpec{
			IntegrationRef: kommov1.LocalObjectReference{Name: in.integration.Name},
			AccountDomain:  in.host,
			Authorization:  newAuthorization(in),
		},
	}
}

func newAuthorization(in install) *kommov1.Authorization {
	return &kommov1.Authorization{
		CodeSecretRef: kommov1.SecretKeyRef{Name: in.secretName, Key: kommov1.AuthorizationCodeKey},
		ReceivedAt:    metav1.NewMicroTime(in.receivedAt),
		FromWidget:    in.fromWidget,
		State:         in.state,
	}
}

// authorizationPatch is a JSON merge patch of spec.authorization alone, guarded by
// resourceVersion. Merge patches merge objects field by field, so optional fields this
// install lacks are set to null explicitly: a widget install must not inherit the state
// of the install before it.
func authorizationPatch(cur *kommov1.KommoInstallation, in install) ([]byte, error) {
	a := newAuthorization(in)
	var taken []*metav1.MicroTime
	if old := cur.Spec.Authorization; old != nil {
		taken = append(taken, &old.ReceivedAt)
	}
	if last := cur.Status.LastAttempt; last != nil {
		taken = append(taken, &last.ReceivedAt)
	}
	a.ReceivedAt = distinct(a.ReceivedAt, append(taken, cur.Status.InstalledAt)...)
	auth := map[string]any{
		"codeSecretRef": a.CodeSecretRef,
		"receivedAt":    a.ReceivedAt,
		"fromWidget":    nil,
		"state":         nil,
	}
	if a.FromWidget {
		auth["fromWidget"] = true
	}
	if a.State != "" {
		auth["state"] = a.State
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": cur.ResourceVersion},
		"spec":     map[string]any{"authorization": auth},
	})
}

// distinct moves t on by whole microseconds until it equals none of taken. The
// controller tells installs (and hooks) apart by receivedAt alone, and two replicas can
// stamp the same microsecond: a new install must never look like one already processed.
func distinct(t metav1.MicroTime, taken ...*metav1.MicroTime) metav1.MicroTime {
	for {
		clash := false
		for _, u := range taken {
			if u != nil && u.Equal(&t) {
				clash = true
			}
		}
		if !clash {
			return t
		}
		t = metav1.NewMicroTime(t.Add(time.Microsecond))
	}
}

// revocationTarget is an installation a revoke hook is recorded on. unlabelled: the
// installation's account id was not known when the hook came (see revocationTargets).
type revocationTarget struct {
	key        client.ObjectKey
	unlabelled bool
}

// recordRevocation patches spec.revocation of each target, guarded by resourceVersion like
// upsertAuthorization. Revocations are ordered by what the object held, not by clocks:
// each records in supersedes the authorization it follows, so the controller applies it
// to that install only. Kommo's signature has no timestamp, so a repeat looks exactly like
// the original: the same hook with the same supersedes is a duplicate, and the same hook
// after a reinstall is recorded again (the controller confirms it with Kommo).
func (s *Server) recordRevocation(ctx context.Context, targets []revocationTarget, rev kommov1.Revocation, log logr.Logger) (string, error) {
	outcome := outcomeDuplicate
	for _, t := range targets {
		o, err := s.revokeOne(ctx, t, rev, log.WithValues("installation", t.key))
		if err != nil {
			return "", err
		}
		if o == outcomeRecorded {
			outcome = outcomeRecorded
		}
	}
	return outcome, nil
}

func (s *Server) revokeOne(ctx context.Context, t revocationTarget, rev kommov1.Revocation, log logr.Logger) (string, error) {
	cur := &kommov1.KommoInstallation{}
	if err := s.cache.Get(ctx, t.key, cur); err != nil {
		if err := s.apiReader.Get(ctx, t.key, cur); err != nil {
			if apierrors.IsNotFound(err) {
				log.Info("Installation deleted before the revoke hook was recorded")
				return outcomeDuplicate, nil
			}
			return "", err
		}
	}
	for range maxConflicts {
		if id := cur.Labels[kommov1.LabelAccountID]; t.unlabelled && id != "" && id != rev.AccountID {
			log.V(1).Info("Revoke hook not recorded: the installation turned out to be another account's")
			return outcomeDuplicate, nil
		}
		r := rev
		if a := cur.Spec.Authorization; a != nil {
			r.Supersedes = a.CodeSecretRef.Name
		}
		old := cur.Spec.Revocation
		if old != nil && old.AccountID == r.AccountID && old.ClientUUID == r.ClientUUID && old.Signature == r.Signature &&
			old.Supersedes == r.Supersedes {
			log.Info("Ignored a duplicate revoke hook")
			return outcomeDuplicate, nil
		}
		var taken []*metav1.MicroTime
		if old != nil {
			taken = append(taken, &old.ReceivedAt)
		}
		if last := cur.Status.LastRevocation; last != nil {
			taken = append(taken, &last.ReceivedAt)
		}
		r.ReceivedAt = distinct(r.ReceivedAt, taken...)
		patch, err := revocationPatch(cur.ResourceVersion, r)
		if err != nil {
			return "", err
		}
		err = s.client.Patch(ctx, cur, client.RawPatch(types.MergePatchType, patch), fieldOwner)
		switch {
		case err == nil:
			log.Info("Recorded revoke hook", "accountKnown", !t.unlabelled)
			return outcomeRecorded, nil
		case apierrors.IsNotFound(err):
			log.Info("Installation deleted before the revoke hook was recorded")
			return outcomeDuplicate, nil
		case apierrors.IsConflict(err):
			if err := s.apiReader.Get(ctx, t.key, cur); err != nil {
				if apierrors.IsNotFound(err) {
					return outcomeDuplicate, nil
				}
				return "", err
			}
		default:
			return "", err
		}
	}
	return "", apierrors.NewConflict(kommov1.GroupVersion.WithResource("kommoinstallations").GroupResource(), t.key.Name,
		fmt.Errorf("the installation kept changing"))
}

// revocationPatch is a JSON merge patch of spec.revocation alone, guarded by
// resourceVersion; an empty supersedes is set to null so that it is not merged with the
// previous hook's.
func revocationPatch(resourceVersion string, r kommov1.Revocation) ([]byte, error) {
	rev := map[string]any{
		"receivedAt": r.ReceivedAt,
		"accountID":  r.AccountID,
		"clientUUID": r.ClientUUID,
		"signature":  r.Signature,
		"supersedes": nil,
	}
	if r.Supersedes != "" {
		rev["supersedes"] = r.Supersedes
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion},
		"spec":     map[string]any{"revocation": rev},
	})
}

// writeFunc makes one attempt at a request's writes and returns its outcome.
type writeFunc func(ctx context.Context) (string, error)

type writeResult struct {
	outcome string
	err     error
	expired bool
}

// Job states: who reports the result.
const (
	jobRunning  int32 = iota
	jobAnswered       // the request waited for the result
	jobDeferred       // the request was answered without it; the job reports itself
)

type job struct {
	state  atomic.Int32
	result chan writeResult
}

// write runs fn, retrying transient failures with backoff until expires, and waits for
// the result until the request's deadline. When the deadline comes first the request is
// answered as deferred and the writes go on in the background (Kommo never resends, so
// giving up would lose the install). done, if not nil, is called when the writes end.
func (s *Server) write(log logr.Logger, start, expires time.Time, fn writeFunc, done func()) writeResult {
	j := &job{result: make(chan writeResult, 1)}
	s.jobs.Add(1)
	go s.runJob(j, log, expires, fn, done)

	timer := time.NewTimer(time.Until(start.Add(s.waitBudget())))
	defer timer.Stop()
	select {
	case res := <-j.result:
		return res
	case <-timer.C:
	}
	deferredWrites.Inc()
	if !j.state.CompareAndSwap(jobRunning, jobDeferred) {
		deferredWrites.Dec() // it finished just now
		return <-j.result
	}
	log.Info("API server slow: answered before the write landed; retrying in the background")
	return writeResult{outcome: outcomeDeferred}
}

// waitBudget is how long a request waits for its writes: the deadline minus time to
// write the answer.
func (s *Server) waitBudget() time.Duration {
	margin := min(s.opts.RequestDeadline/10, 100*time.Millisecond)
	return s.opts.RequestDeadline - margin
}

func (s *Server) runJob(j *job, log logr.Logger, expires time.Time, fn writeFunc, done func()) {
	defer s.jobs.Done()
	ctx, cancel := context.WithDeadline(s.jobsCtx, expires)
	defer cancel()
	res := s.retry(ctx, log, fn)
	if done != nil {
		done()
	}
	if j.state.CompareAndSwap(jobRunning, jobAnswered) {
		j.result <- res
		return
	}
	deferredWrites.Dec()
	switch {
	case res.err == nil:
		deferredWritesTotal.WithLabelValues(deferredRecorded).Inc()
		log.Info("Background write done", "outcome", res.outcome)
	case res.expired:
		deferredWritesTotal.WithLabelValues(deferredExpired).Inc()
		log.Error(res.err, "Background write gave up: the authorization code has expired; the account must install again")
	default:
		deferredWritesTotal.WithLabelValues(deferredFailed).Inc()
		log.Error(res.err, "Background write failed")
	}
}

func (s *Server) retry(ctx context.Context, log logr.Logger, fn writeFunc) writeResult {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.opts.AttemptTimeout)
		outcome, err := fn(actx)
		cancel()
		if err == nil {
			return writeResult{outcome: outcome}
		}
		if ctx.Err() != nil {
			return writeResult{err: err, expired: ctx.Err() == context.DeadlineExceeded}
		}
		if !retryable(err) {
			return writeResult{err: err}
		}
		log.V(1).Info("Write failed; retrying", "attempt", attempt, "error", err.Error())
		// Jitter spreads the retries of many deferred writes when the API server comes back.
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return writeResult{err: err, expired: ctx.Err() == context.DeadlineExceeded}
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// retryable: anything but a refusal that retrying cannot change.
//
// A 403 is retried: an API server that has just restarted refuses requests while its
// authorizer warms up, and Kommo never resends the install. A refusal by RBAC or the write
// policy then costs retries until the code expires, with every attempt logged.
func retryable(err error) bool {
	switch {
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err),
		apierrors.IsNotFound(err), apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err),
		apierrors.IsUnsupportedMediaType(err), apierrors.IsRequestEntityTooLargeError(err):
		return false
	}
	return true
}
