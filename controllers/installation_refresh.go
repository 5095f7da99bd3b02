package controllers

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

var randFloat = rand.Float64

// reconcileRefresh refreshes the grant at status.refreshTime or when asked to by the
// refresh-requested-at annotation, whatever the other concerns are doing. The refresh
// token is single-use: it is read live, and the new pair is written before anything else,
// only over the pair it replaces.
func (r *InstallationReconciler) reconcileRefresh(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	if !s.refreshable() {
		return nil
	}
	if s.tokens.ExpiresAt.After(s.now) {
		s.requeue(s.tokens.ExpiresAt.Sub(s.now)) // Ready turns False at expiry
	}
	requested, _ := time.Parse(time.RFC3339, inst.Annotations[kommov1.AnnotationRefreshRequestedAt])
	last := time.Time{}
	if st.LastRefreshTime != nil {
		last = st.LastRefreshTime.Time
	} else if st.InstalledAt != nil {
		last = st.InstalledAt.Time
	}
	var planned *time.Time
	if st.RefreshTime != nil {
		planned = &st.RefreshTime.Time
	}
	if due, next := RefreshDue(s.now, planned, requested, last); !due {
		s.requeue(next.Sub(s.now))
		return nil
	}
	app, ok, err := r.readyToSpend(ctx, s, concernRefresh)
	if !ok || err != nil {
		return err
	}

	var refreshErr error
	var sent string
	var fenced time.Duration
	err = r.SingleUse.Run(ctx, func(ctx context.Context) error {
		live, err := r.liveTokens(ctx, s)
		if err != nil {
			return err
		}
		if live == nil || s.tokenSecret.ResourceVersion != s.tokenVersion {
			return errSuperseded // the cache is behind the Secret
		}
		s.tokens = live
		if sent = live.RefreshToken; sent == "" {
			return nil // edited away: nothing to refresh with
		}
		if fenced = fencedFor(live.Refreshing, r.Replica, s.now); fenced > 0 {
			return nil
		}
		// Fence the refresh token before sending it; another replica racing us loses the
		// optimistic write and sees the fence.
		if _, err := r.writeTokenSecret(ctx, s, func(cur *tokens, exists bool) error {
			if !exists || cur.RefreshToken != sent {
				return errSuperseded
			}
			cur.Refreshing = refreshFence(r.Replica, s.now)
			return nil
		}); err != nil {
			return err
		}
		tok, err := r.Kommo.Refresh(ctx, s.host(), app, sent)
		if movable(err) && r.followRename(ctx, s, live) {
			tok, err = r.Kommo.Refresh(ctx, s.host(), app, sent)
		}
		if err != nil {
			refreshErr = err
			// Kommo answered (or the answer was lost); either way the fence goes.
			return r.storeTokens(ctx, s, func(cur *tokens, exists bool) error {
				if !exists || cur.RefreshToken != sent {
					return errSuperseded
				}
				cur.Refreshing = ""
				return nil
			})
		}
		defer observeUnpersisted(time.Now())
		return r.storeTokens(ctx, s, func(cur *tokens, exists bool) error {
			if exists && cur.RefreshToken == tok.RefreshToken {
				return nil // an attempt that timed out landed after all
			}
			if !exists || cur.RefreshToken != sent {
				return errSuperseded
			}
			cur.AccessToken, cur.RefreshToken, cur.ExpiresAt = tok.AccessToken, tok.RefreshToken, tok.ExpiresAt
			cur.AccountDomain, cur.Refreshing = s.host(), ""
			return nil
		})
	})
	switch {
	case errors.Is(err, errSuperseded):
		s.stale = true
		return nil
	case err != nil:
		return err
	case sent == "":
		logf.FromContext(ctx).Info("The token Secret holds no refresh token; the account must install the integration again")
		return nil
	case fenced > 0:
		logf.FromContext(ctx).Info("Another replica is refreshing these tokens; waiting", "for", fenced.Round(time.Second).String())
		s.requeue(fenced)
		return nil
	case refreshErr != nil:
		r.refreshFailed(ctx, s, refreshErr)
		return nil
	}
	s.spent = true
	tokenRefreshes.WithLabelValues("success").Inc()
	s.succeeded(concernRefresh)
	st.LastRefreshTime = ptr.To(metav1.NewTime(s.now))
	r.planRefresh(s, s.now)
	logf.FromContext(ctx).Info("Refreshed tokens", "expiresAt", s.tokens.ExpiresAt.UTC().Format(time.RFC3339),
		"nextRefresh", st.RefreshTime.UTC().Format(time.RFC3339))
	return nil
}

// refreshFailed records a failed refresh. Only Kommo saying the refresh token is revoked
// ends the grant; anything else is retried, and the grant stays Authorized while its
// access token lasts.
func (r *InstallationReconciler) refreshFailed(ctx context.Context, s *installationScope, err error) {
	reason, _ := reasonOf(err)
	if kommo.KindOf(err) == kommo.KindTokenRevoked {
		tokenRefreshes.WithLabelValues("revoked").Inc()
		r.Recorder.Eventf(s.inst, nil, corev1.EventTypeWarning, eventReinstallRequired, "Refresh",
			"Kommo revoked the refresh token; the account must install the integration again")
	} else {
		tokenRefreshes.WithLabelValues("failure").Inc()
	}
	r.failed(ctx, s, concernRefresh, reason, err)
}

// liveTokens reads the token Secret from the API server, nil when there is none.
func (r *InstallationReconciler) liveTokens(ctx context.Context, s *installationScope) (*tokens, error) {
	var out *tokens
	_, err := r.writeTokenSecret(ctx, s, func(cur *tokens, exists bool) error {
		if exists {
			c := *cur
			out = &c
		}
		return errSuperseded // read only
	})
	if err != nil && !errors.Is(err, errSuperseded) {
		return nil, err
	}
	return out, nil
}
