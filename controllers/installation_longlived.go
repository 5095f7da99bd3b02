package controllers

import (
	"context"
	"errors"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

const (
	// longLivedWarning is how long before a long-lived token expires a Warning is raised.
	longLivedWarning = 7 * 24 * time.Hour
	// longLivedPoll is how often a long-lived token's Secret is read again for a new token.
	longLivedPoll = time.Hour
)

// reconcileLongLivedToken copies a private integration's long-lived token into the token
// Secret and tracks its expiry: no exchange, no refresh. A new token counts as a new
// install (status.installedAt), so the channel is connected again.
func (r *InstallationReconciler) reconcileLongLivedToken(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	value, err := secretValue(ctx, s.secrets, inst.Namespace, *inst.Spec.LongLivedTokenSecretRef)
	if err != nil {
		var missing *errSecretMissing
		if !errors.As(err, &missing) {
			return err
		}
		s.authorized(metav1.ConditionFalse, kommov1.ReasonSecretNotFound, missing.Error())
		s.requeue(dependencyPoll)
		return nil
	}
	claims, err := kommo.ParseClaims(value)
	if err != nil {
		s.authorized(metav1.ConditionFalse, kommov1.ReasonInvalidToken, "The long-lived token is not a Kommo access token (a JWT)")
		s.requeue(longLivedPoll)
		return nil
	}
	if _, err := r.tokenContent(ctx, s); err != nil || s.stale {
		return err
	}
	if s.tokens == nil || s.tokens.AccessToken != value || st.InstalledAt == nil {
		t := tokens{AccessToken: value, ExpiresAt: claims.ExpiresAt, AccountDomain: s.host(), AccountID: claims.AccountID}
		if err := r.storeTokens(ctx, s, func(cur *tokens, exists bool) error {
			t.AmojoID, t.ScopeID = cur.AmojoID, cur.ScopeID
			*cur = t
			return nil
		}); err != nil {
			return err
		}
		st.InstalledAt = ptr.To(metav1.NewMicroTime(s.now))
	}
	st.AccessTokenExpiresAt = ptr.To(metav1.NewTime(claims.ExpiresAt))
	st.RefreshTime = nil
	expires := claims.ExpiresAt.UTC().Format(time.RFC3339)
	switch left := claims.ExpiresAt.Sub(s.now); {
	case left <= 0:
		s.authorized(metav1.ConditionFalse, kommov1.ReasonTokenExpired, "The long-lived token expired at "+expires+"; put a new one in its Secret")
		s.requeue(longLivedPoll)
	case left <= longLivedWarning:
		if c := meta.FindStatusCondition(st.Conditions, kommov1.ConditionAuthorized); c == nil || !strings.HasPrefix(c.Message, "Long-lived token expires") {
			r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventTokenExpiring, "CheckExpiry",
				"The long-lived token expires at %s; put a new one in its Secret", expires)
		}
		s.authorized(metav1.ConditionTrue, kommov1.ReasonAuthorized, "Long-lived token expires at "+expires)
		s.requeue(min(left, longLivedPoll))
	default:
		s.authorized(metav1.ConditionTrue, kommov1.ReasonAuthorized, "Using the long-lived token")
		s.requeue(min(left-longLivedWarning, longLivedPoll))
	}
	return nil
}
