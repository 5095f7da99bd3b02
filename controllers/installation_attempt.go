package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// codeLifetime is how long Kommo accepts an authorization code.
const codeLifetime = 20 * time.Minute

// reconcileGrant keeps the tokens that work: it exchanges the latest install's code (the
// attempt), then refreshes whatever grant the installation holds when that is due. A
// failed attempt never touches the grant. Long-lived tokens are only tracked.
func (r *InstallationReconciler) reconcileGrant(ctx context.Context, s *installationScope) error {
	if s.inst.Spec.LongLivedTokenSecretRef != nil {
		return r.reconcileLongLivedToken(ctx, s)
	}
	if err := r.reconcileAttempt(ctx, s); err != nil || s.stale {
		return err
	}
	return r.reconcileRefresh(ctx, s)
}

// attemptDone reports whether the install in spec.authorization was processed, either way.
func attemptDone(st *kommov1.KommoInstallationStatus, auth *kommov1.Authorization) bool {
	if a := st.LastAttempt; a != nil && a.ReceivedAt.Equal(&auth.ReceivedAt) {
		return true
	}
	// Written by releases before lastAttempt (adoptLegacyStatus carries their failures
	// over): installedAt was set once an install was fully processed.
	return st.LastAttempt == nil && st.InstalledAt != nil && st.InstalledAt.Equal(&auth.ReceivedAt)
}

// reconcileAttempt exchanges the code of an install not processed yet. Everything that
// can make it fail — an invalid state, an expired or unknown code, a missing code Secret,
// Kommo's 4xx — ends the attempt with a reason; the grant, if any, carries on.
func (r *InstallationReconciler) reconcileAttempt(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	auth := inst.Spec.Authorization
	if auth == nil || attemptDone(st, auth) {
		return nil
	}
	if s.tokens != nil && s.tokens.Authorization == receivedAtKey(auth.ReceivedAt) {
		// Exchanged by a pass that did not get to record it: status takes the expiry
		// from the Secret.
		if ok, err := r.tokenContent(ctx, s); !ok || err != nil {
			return err
		}
		r.attemptSucceeded(ctx, s, false)
		return nil
	}
	if ref := s.integration.Spec.StateSecretRef; ref != nil && !auth.FromWidget {
		key, err := secretValue(ctx, s.secrets, inst.Namespace, *ref)
		if err != nil {
			var missing *errSecretMissing
			if !errors.As(err, &missing) {
				return err
			}
			s.notReady(kommov1.ReasonIntegrationNotReady, missing.Error())
			s.requeue(dependencyPoll)
			return nil
		}
		if err := kommo.VerifyState([]byte(key), auth.State, s.now); err != nil {
			r.attemptFailed(ctx, s, kommov1.ReasonInvalidState, "The install's state is "+stateProblem(err), true)
			return nil
		}
	}
	if s.now.Sub(auth.ReceivedAt.Time) > codeLifetime {
		r.attemptFailed(ctx, s, kommov1.ReasonInvalidCode, "The code expired before it could be exchanged", true)
		return nil
	}
	code, err := secretValue(ctx, s.secrets, inst.Namespace, auth.CodeSecretRef)
	if err != nil {
		var missing *errSecretMissing
		if !errors.As(err, &missing) {
			return err
		}
		r.attemptFailed(ctx, s, kommov1.ReasonCodeNotFound, missing.Error(), true)
		return nil
	}
	app, ok, err := r.readyToSpend(ctx, s, concernAttempt)
	if !ok || err != nil {
		return err
	}

	key := receivedAtKey(auth.ReceivedAt)
	var exchangeErr error
	var adopted *tokens
	err = r.SingleUse.Run(ctx, func(ctx context.Context) error {
		// The grant the new tokens replace; a write that finds another one there (an
		// exchange of a newer install by another replica) is dropped.
		before, err := r.liveTokens(ctx, s)
		if err != nil {
			return err
		}
		if before != nil && before.Authorization == key {
			// Exchanged by a pass whose status never landed (the cache did not show it):
			// the code is spent, the Secret holds its pair.
			adopted = before
			return nil
		}
		tok, err := r.Kommo.ExchangeCode(ctx, inst.Spec.AccountDomain, app, code)
		if err != nil {
			exchangeErr = err
			return nil
		}
		defer observeUnpersisted(time.Now())
		return r.storeTokens(ctx, s, func(cur *tokens, exists bool) error {
			if exists && cur.Authorization == key && cur.RefreshToken == tok.RefreshToken {
				return nil // an attempt that timed out landed after all
			}
			if exists != (before != nil) || exists && cur.Authorization != before.Authorization {
				return errSuperseded
			}
			next := tokens{
				AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt,
				AccountDomain: inst.Spec.AccountDomain, Authorization: key,
			}
			if claims, err := kommo.ParseClaims(tok.AccessToken); err == nil {
				next.AccountID = claims.AccountID
			}
			if exists && cur.AccountID == next.AccountID {
				// A reinstall in the same account: keep what is known until looked up again.
				next.AmojoID, next.ScopeID = cur.AmojoID, cur.ScopeID
			}
			*cur = next
			return nil
		})
	})
	switch {
	case errors.Is(err, errSuperseded):
		s.stale = true // another writer got there first; look again from fresh data
		return nil
	case err != nil:
		return err
	case exchangeErr != nil:
		r.exchangeFailed(ctx, s, exchangeErr)
		return nil
	case adopted != nil:
		s.tokens = adopted
		r.attemptSucceeded(ctx, s, false)
		return nil
	}
	s.spent = true
	if err := r.deleteCodeSecret(context.WithoutCancel(ctx), s); err != nil {
		// The code is spent either way; the Secret goes with its KommoIntegration.
		logf.FromContext(ctx).Error(err, "Deleting the exchanged code Secret")
	}
	r.attemptSucceeded(ctx, s, true)
	return nil
}

// exchangeFailed sorts a failed exchange: Kommo's refusals of the install end the attempt;
// a refused client secret and outages are retried while the code lives.
func (r *InstallationReconciler) exchangeFailed(ctx context.Context, s *installationScope, err error) {
	switch kommo.KindOf(err) {
	case kommo.KindInvalidCode:
		r.attemptFailed(ctx, s, kommov1.ReasonInvalidCode, "Kommo rejected the code (expired, used or never issued)", true)
	case kommo.KindNotFound:
		r.attemptFailed(ctx, s, kommov1.ReasonAccountNotFound, fmt.Sprintf("Kommo has no account at %s", s.inst.Spec.AccountDomain), true)
	case kommo.KindBadRequest, kommo.KindUnauthorized, kommo.KindTokenRevoked:
		r.attemptFailed(ctx, s, kommov1.ReasonKommoRejected, "Kommo rejected the exchange: "+err.Error(), true)
	default:
		reason, _ := reasonOf(err)
		r.failed(ctx, s, concernAttempt, reason, err)
	}
}

// attemptSucceeded makes the exchanged install the grant: a reinstall reconnects the
// channel, and the refresh is planned from the new tokens.
func (r *InstallationReconciler) attemptSucceeded(ctx context.Context, s *installationScope, exchanged bool) {
	inst, st := s.inst, &s.inst.Status
	auth := inst.Spec.Authorization
	reinstall := st.InstalledAt != nil
	st.InstalledAt = auth.ReceivedAt.DeepCopy()
	st.LastAttempt = &kommov1.Outcome{ReceivedAt: auth.ReceivedAt, Result: kommov1.OutcomeSucceeded,
		Reason: kommov1.ReasonExchanged, Message: "The install's code was exchanged for tokens", Time: metav1.NewTime(s.now)}
	st.AccountDomain = inst.Spec.AccountDomain
	st.LastRefreshTime = nil
	s.succeeded(concernAttempt)
	s.succeeded(concernRefresh)
	r.tokensStored(s, *s.tokens)
	r.planRefresh(s, s.now)
	if !exchanged {
		return
	}
	reason, verb := eventInstalled, "Installed"
	if reinstall {
		reason, verb = eventReinstalled, "Reinstalled"
	}
	r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, reason, "Exchange", "%s in %s; tokens in Secret %s",
		verb, inst.Spec.AccountDomain, tokenSecretName(inst.Name))
	logf.FromContext(ctx).Info("Exchanged code for tokens", "account", inst.Spec.AccountDomain, "secret", tokenSecretName(inst.Name))
}

// attemptFailed ends the current install with reason. The grant, if any, is left alone:
// a forged or stale install must not break a working installation.
func (r *InstallationReconciler) attemptFailed(ctx context.Context, s *installationScope, reason, message string, event bool) {
	inst, st := s.inst, &s.inst.Status
	st.LastAttempt = &kommov1.Outcome{ReceivedAt: inst.Spec.Authorization.ReceivedAt, Result: kommov1.OutcomeFailed,
		Reason: reason, Message: truncate(message, 1024), Time: metav1.NewTime(s.now)}
	s.succeeded(concernAttempt)
	if err := r.deleteCodeSecret(ctx, s); err != nil {
		logf.FromContext(ctx).Error(err, "Deleting the code Secret of a failed install")
	}
	if !event {
		return
	}
	grant := "the installation has no working grant; the account must install the integration again"
	if s.tokens != nil {
		grant = "the installation keeps its working grant"
	}
	r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventInstallFailed, "Exchange", "The install received at %s failed (%s): %s; %s",
		inst.Spec.Authorization.ReceivedAt.UTC().Format(time.RFC3339), reason, message, grant)
	logf.FromContext(ctx).Info("Install failed", "reason", reason, "keptGrant", s.tokens != nil)
}

// stateProblem describes a state verification failure without echoing the state.
func stateProblem(err error) string {
	switch {
	case errors.Is(err, kommo.ErrStateExpired):
		return "expired"
	case errors.Is(err, kommo.ErrStateSignature):
		return "badly signed"
	}
	return "missing or malformed"
}

// planRefresh sets the next refresh from the current token's lifetime.
func (r *InstallationReconciler) planRefresh(s *installationScope, issued time.Time) {
	jitter := r.Jitter
	if jitter == nil {
		jitter = randFloat
	}
	at := RefreshTime(issued, s.tokens.ExpiresAt, jitter())
	s.inst.Status.RefreshTime = ptr.To(metav1.NewTime(at))
	s.requeue(at.Sub(s.now))
}
