package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

var (
	// errNotOwned: a Secret with the token Secret's name exists and belongs to someone else.
	errNotOwned = errors.New("exists and is not controlled by this installation; rename or delete it")
	// errSuperseded: the token Secret no longer holds what a write was based on (another
	// replica wrote newer tokens meanwhile); writing would put a spent pair back.
	errSuperseded = errors.New("the token Secret changed meanwhile")
)

// tokenUpdate changes the token Secret's content as read live (exists false: there is
// none yet). Returning errSuperseded cancels the write.
type tokenUpdate func(cur *tokens, exists bool) error

// loadTokens reads what the cache holds of the grant: the token Secret's metadata, as the
// cache keeps no Secret data. tokenContent reads the tokens themselves, live, when a Kommo
// call needs them. When status names a token Secret the cache does not have, it is read
// live once: a Secret that lost its managed-by label is still the grant.
func (r *InstallationReconciler) loadTokens(ctx context.Context, s *installationScope) error {
	key := types.NamespacedName{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}
	cached := &metav1.PartialObjectMetadata{}
	cached.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.Get(ctx, key, cached)
	switch {
	case apierrors.IsNotFound(err) && s.inst.Status.TokenSecretName != "":
		live, err := r.liveTokenSecret(ctx, s, key)
		if err != nil || live == nil || !controlledBy(&live.ObjectMeta, s.inst) {
			s.tokens = nil
			return err
		}
		t := readTokens(live)
		s.tokens, s.tokenVersion = &t, live.ResourceVersion
		return nil
	case apierrors.IsNotFound(err):
		s.tokens = nil
		return nil
	case err != nil:
		return err
	}
	if r.writtenTokens.behind(cached, time.Now()) {
		s.stale = true // the cache has not seen this process's last write of it yet
		return nil
	}
	if !controlledBy(&cached.ObjectMeta, s.inst) {
		s.tokens = nil // e.g. left by a deleted namesake, waiting for garbage collection
		return nil
	}
	t := tokensFromMetadata(&cached.ObjectMeta, &s.inst.Status)
	s.tokens, s.tokenVersion, s.cachedTokenSecret = &t, cached.ResourceVersion, &cached.ObjectMeta
	return nil
}

// tokenContent makes s.tokens hold the token Secret's content, read live once a pass,
// right before a Kommo call needs the tokens. It reports false when there is no grant to
// use: none, or the cache showed a Secret the API server no longer has (the pass then
// runs again).
func (r *InstallationReconciler) tokenContent(ctx context.Context, s *installationScope) (bool, error) {
	if s.tokens == nil || s.tokens.Content {
		return s.tokens != nil, nil
	}
	key := types.NamespacedName{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}
	live, err := r.liveTokenSecret(ctx, s, key)
	if err != nil {
		return false, err
	}
	if live == nil || !controlledBy(&live.ObjectMeta, s.inst) {
		s.stale = true
		return false, nil
	}
	t := readTokens(live)
	s.tokens, s.tokenVersion = &t, live.ResourceVersion
	return true, nil
}

// controlledBy reports whether a token Secret is inst's own, not a namesake's.
func controlledBy(m *metav1.ObjectMeta, inst *kommov1.KommoInstallation) bool {
	ref := metav1.GetControllerOf(m)
	return ref != nil && ref.UID == inst.UID
}

// writeTokenSecret applies update to the live token Secret (or a new one) and writes it
// with an optimistic lock, so a concurrent writer makes it fail rather than be overwritten.
func (r *InstallationReconciler) writeTokenSecret(ctx context.Context, s *installationScope, update tokenUpdate) (tokens, error) {
	key := types.NamespacedName{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}
	live, err := r.liveTokenSecret(ctx, s, key)
	if err != nil {
		return tokens{}, err
	}
	exists := live != nil
	var cur tokens
	if exists {
		if !controlledBy(&live.ObjectMeta, s.inst) {
			return tokens{}, fmt.Errorf("secret %s: %w", key.Name, errNotOwned)
		}
		cur = readTokens(live)
	}
	if err := update(&cur, exists); err != nil {
		return tokens{}, err
	}
	cur.Content = true
	desired := buildTokenSecret(s.inst, s.integration, cur)
	if !exists {
		return cur, r.wroteTokenSecret(s, desired, r.Create(ctx, desired))
	}
	if equality.Semantic.DeepEqual(live.Data, desired.Data) && live.Type == desired.Type &&
		subset(desired.Labels, live.Labels) && subset(desired.Annotations, live.Annotations) &&
		(cur.Refreshing != "" || live.Annotations[annotationRefreshing] == "") {
		return cur, nil
	}
	updated := live.DeepCopy()
	updated.Data = desired.Data
	updated.Labels = merged(updated.Labels, desired.Labels)
	updated.Annotations = merged(updated.Annotations, desired.Annotations)
	if cur.Refreshing == "" {
		delete(updated.Annotations, annotationRefreshing)
	}
	return cur, r.wroteTokenSecret(s, updated, r.Update(ctx, updated))
}

// liveTokenSecret is the token Secret as the API server has it (nil when there is none):
// what this pass last read or wrote, else read now.
func (r *InstallationReconciler) liveTokenSecret(ctx context.Context, s *installationScope, key types.NamespacedName) (*corev1.Secret, error) {
	if s.tokenSecretKnown {
		return s.tokenSecret, nil
	}
	live := &corev1.Secret{}
	switch err := r.APIReader.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, err
	}
	s.tokenSecret, s.tokenSecretKnown = live, true
	return live, nil
}

// wroteTokenSecret remembers written as the live token Secret when the write err
// succeeded; after a failure the next write reads it again.
func (r *InstallationReconciler) wroteTokenSecret(s *installationScope, written *corev1.Secret, err error) error {
	if err != nil {
		s.tokenSecret, s.tokenSecretKnown = nil, false
		return err
	}
	s.tokenSecret, s.tokenSecretKnown, s.tokenVersion = written, true, written.ResourceVersion
	r.writtenTokens.wrote(written, time.Now())
	return nil
}

// storeTokens writes tokens Kommo just issued, retrying until ctx ends: Kommo has spent
// the previous code or refresh token, so these may be the only valid tokens in existence.
// When the API server stays unreachable they are kept for the next reconcile.
func (r *InstallationReconciler) storeTokens(ctx context.Context, s *installationScope, update tokenUpdate) error {
	delay := 100 * time.Millisecond
	for {
		t, err := r.writeTokenSecret(ctx, s, update)
		if err == nil {
			r.unsaved.Delete(r.key(s))
			r.tokensStored(s, t)
			return nil
		}
		if errors.Is(err, errNotOwned) || errors.Is(err, errSuperseded) {
			return err
		}
		logf.FromContext(ctx).Error(err, "Writing the token Secret, retrying", "secret", tokenSecretName(s.inst.Name))
		timer := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			timer.Stop()
			r.unsaved.Store(r.key(s), update)
			return fmt.Errorf("writing token Secret %s: %w", tokenSecretName(s.inst.Name), err)
		case <-timer.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// tokensStored records written tokens in the scope and status.
func (r *InstallationReconciler) tokensStored(s *installationScope, t tokens) {
	s.tokens = &t
	s.inst.Status.TokenSecretName = tokenSecretName(s.inst.Name)
	s.inst.Status.AccessTokenExpiresAt = ptr.To(metav1.NewTime(t.ExpiresAt))
}

// saveUnsavedTokens writes tokens an earlier reconcile received but could not persist.
func (r *InstallationReconciler) saveUnsavedTokens(ctx context.Context, s *installationScope) error {
	v, ok := r.unsaved.Load(r.key(s))
	if !ok {
		return nil
	}
	err := r.SingleUse.Run(ctx, func(ctx context.Context) error { return r.storeTokens(ctx, s, v.(tokenUpdate)) })
	if errors.Is(err, errSuperseded) {
		r.unsaved.Delete(r.key(s))
		logf.FromContext(ctx).Info("Dropped unsaved tokens: the token Secret holds newer ones")
		return nil
	}
	return err
}

// syncTokenSecret writes what the account lookup, the connect and a rename add to the
// token Secret (account id, amojo_id, scope_id, account_domain) and repairs edits to it,
// leaving the tokens themselves as they are live. Nothing is read or written when the
// Secret already says it all.
func (r *InstallationReconciler) syncTokenSecret(ctx context.Context, s *installationScope) error {
	if s.tokens == nil {
		return nil
	}
	if r.tokenSecretCurrent(s) {
		s.tokensConfirmed = s.tokenVersion
		return nil
	}
	t, err := r.writeTokenSecret(ctx, s, func(cur *tokens, exists bool) error {
		if !exists {
			return errSuperseded // deleted meanwhile: never recreate it without its tokens
		}
		s.applyFacts(cur)
		return nil
	})
	switch {
	case errors.Is(err, errSuperseded):
		return nil
	case apierrors.IsConflict(err):
		s.requeue(time.Second) // a refresh raced us; the next pass writes the facts
		return nil
	case err != nil:
		return err
	}
	s.tokens, s.tokensConfirmed = &t, s.tokenVersion
	return nil
}

// tokenSecretCurrent reports whether the token Secret already holds status's facts and
// the metadata it should, without reading it: from its content as this pass read or
// wrote it, else from the cached metadata when status confirmed the cached version and
// this pass left the facts as they were.
func (r *InstallationReconciler) tokenSecretCurrent(s *installationScope) bool {
	if live := s.tokenSecret; live != nil {
		want := readTokens(live)
		s.applyFacts(&want)
		desired := buildTokenSecret(s.inst, s.integration, want)
		return equality.Semantic.DeepEqual(live.Data, desired.Data) &&
			subset(desired.Labels, live.Labels) && subset(desired.Annotations, live.Annotations)
	}
	cached := s.cachedTokenSecret
	if cached == nil {
		return false
	}
	want := tokensFromMetadata(cached, &s.inst.Status)
	s.applyFacts(&want)
	desired := buildTokenSecret(s.inst, s.integration, want)
	return subset(desired.Labels, cached.Labels) && subset(desired.Annotations, cached.Annotations) &&
		cached.ResourceVersion == s.original.Status.TokenSecretVersion &&
		accountFactsOf(&s.original.Status) == accountFactsOf(&s.inst.Status)
}

// applyFacts sets on t what status knows of the account; what it does not know yet (an
// account id before the lookup, the amojo_id of a reinstall) stays as t has it.
func (s *installationScope) applyFacts(t *tokens) {
	st := &s.inst.Status
	t.AccountDomain = s.host()
	if st.AccountID != 0 {
		t.AccountID = st.AccountID
	}
	if st.AmojoID != "" {
		t.AmojoID = st.AmojoID
	}
	t.ScopeID = st.ScopeID
}

// accountFacts are what status tells the token Secret to carry besides the tokens.
type accountFacts struct {
	domain, amojoID, scopeID string
	accountID                int64
}

func accountFactsOf(st *kommov1.KommoInstallationStatus) accountFacts {
	return accountFacts{domain: st.AccountDomain, amojoID: st.AmojoID, scopeID: st.ScopeID, accountID: st.AccountID}
}

// confirmedTokenSecretVersion is the token Secret version status records: the one this
// pass confirmed holds the facts; else the recorded one while the facts it vouches for
// are unchanged; else none, so that the next pass reads the Secret.
func confirmedTokenSecretVersion(s *installationScope) string {
	switch {
	case s.tokensConfirmed != "":
		return s.tokensConfirmed
	case accountFactsOf(&s.original.Status) == accountFactsOf(&s.inst.Status):
		return s.original.Status.TokenSecretVersion
	}
	return ""
}

// deleteTokens deletes the token Secret.
func (r *InstallationReconciler) deleteTokens(ctx context.Context, s *installationScope) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}}
	r.unsaved.Delete(r.key(s))
	s.tokens, s.tokenSecret, s.tokenSecretKnown, s.cachedTokenSecret = nil, nil, false, nil
	return client.IgnoreNotFound(r.Delete(ctx, secret))
}

// deleteCodeSecret deletes the Secret of the install's code once it is of no more use.
func (r *InstallationReconciler) deleteCodeSecret(ctx context.Context, s *installationScope) error {
	auth := s.inst.Spec.Authorization
	if auth == nil {
		return nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.inst.Namespace, Name: auth.CodeSecretRef.Name}}
	return client.IgnoreNotFound(r.Delete(ctx, secret))
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func merged(base, add map[string]string) map[string]string {
	if base == nil {
		base = map[string]string{}
	}
	for k, v := range add {
		base[k] = v
	}
	return base
}
