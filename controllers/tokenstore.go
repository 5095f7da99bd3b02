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

// loadTokens reads the grant from the cache (the token Secret is the operator's, so it is
// cached). When status names a token Secret the cache does not have, it is read live once:
// a Secret that lost its managed-by label is still the grant.
func (r *InstallationReconciler) loadTokens(ctx context.Context, s *installationScope) error {
	key := types.NamespacedName{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) && s.inst.Status.TokenSecretName != "" {
		err = r.APIReader.Get(ctx, key, secret)
	}
	switch {
	case apierrors.IsNotFound(err):
		s.tokens = nil
		return nil
	case err != nil:
		return err
	}
	if ref := metav1.GetControllerOf(secret); ref == nil || ref.UID != s.inst.UID {
		s.tokens = nil // e.g. left by a deleted namesake, waiting for garbage collection
		return nil
	}
	t := readTokens(secret)
	s.tokens = &t
	return nil
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
		if ref := metav1.GetControllerOf(live); ref == nil || ref.UID != s.inst.UID {
			return tokens{}, fmt.Errorf("secret %s: %w", key.Name, errNotOwned)
		}
		cur = readTokens(live)
	}
	if err := update(&cur, exists); err != nil {
		return tokens{}, err
	}
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
	if s.tokenSecret != nil {
		return s.tokenSecret, nil
	}
	live := &corev1.Secret{}
	switch err := r.APIReader.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	s.tokenSecret = live
	return live, nil
}

// wroteTokenSecret remembers written as the live token Secret when the write err
// succeeded; after a failure the next write reads it again.
func (r *InstallationReconciler) wroteTokenSecret(s *installationScope, written *corev1.Secret, err error) error {
	if err != nil {
		s.tokenSecret = nil
		return err
	}
	s.tokenSecret = written
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
// token Secret (account id, amojo_id, scope_id, account_domain) and repairs edits to its
// metadata, leaving the tokens themselves as they are live. Nothing is written when the
// cached Secret already says it all.
func (r *InstallationReconciler) syncTokenSecret(ctx context.Context, s *installationScope) error {
	if s.tokens == nil {
		return nil
	}
	st := s.inst.Status
	want := *s.tokens
	want.AccountDomain = s.host()
	if st.AccountID != 0 {
		want.AccountID = st.AccountID // else the token's claim, until the lookup confirms it
	}
	if st.AmojoID != "" {
		want.AmojoID = st.AmojoID
	}
	want.ScopeID = st.ScopeID
	cached := &corev1.Secret{}
	key := types.NamespacedName{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}
	if err := r.Get(ctx, key, cached); err == nil {
		desired := buildTokenSecret(s.inst, s.integration, want)
		if equality.Semantic.DeepEqual(cached.Data, desired.Data) && subset(desired.Labels, cached.Labels) &&
			subset(desired.Annotations, cached.Annotations) {
			return nil
		}
	}
	t, err := r.writeTokenSecret(ctx, s, func(cur *tokens, exists bool) error {
		if !exists {
			return errSuperseded // deleted meanwhile: never recreate it without its tokens
		}
		cur.AccountDomain, cur.AccountID, cur.AmojoID, cur.ScopeID = want.AccountDomain, want.AccountID, want.AmojoID, want.ScopeID
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
	s.tokens = &t
	return nil
}

// deleteTokens deletes the token Secret.
func (r *InstallationReconciler) deleteTokens(ctx context.Context, s *installationScope) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}}
	r.unsaved.Delete(r.key(s))
	s.tokens, s.tokenSecret = nil, nil
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
