package controllers

import (
	"context"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// reconcileRevocation decides an "access revoked" hook once. A valid signature only says
// Kommo minted the hook at some time — it is static, so a replay after a reinstall looks
// the same. The hook ends the grant only when it follows the install the grant came from
// and Kommo confirms the grant is dead (its tokens answer 401); otherwise it is ignored
// with a reason, and with a Warning when it looks like a replay or a forgery.
func (r *InstallationReconciler) reconcileRevocation(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	rev := inst.Spec.Revocation
	if rev == nil || (st.LastRevocation != nil && st.LastRevocation.ReceivedAt.Equal(&rev.ReceivedAt)) {
		return nil
	}
	if superseded(inst) {
		r.revocationDecided(ctx, s, kommov1.OutcomeIgnored, kommov1.ReasonSuperseded, "An install was recorded after the hook")
		return nil
	}
	account := st.AccountID
	if account == 0 && s.tokens != nil {
		account = s.tokens.AccountID // from the token's claims, until the lookup confirms it
	}
	if account != 0 && rev.AccountID != strconv.FormatInt(account, 10) {
		// The webhook records a hook on every installation whose account it does not know
		// yet; this one is another account's, whatever its signature.
		r.revocationDecided(ctx, s, kommov1.OutcomeIgnored, kommov1.ReasonOtherAccount, "The hook is for account "+rev.AccountID)
		return nil
	}
	app, ok, err := r.credentials(ctx, s)
	if !ok || err != nil {
		return err
	}
	if !strings.EqualFold(rev.ClientUUID, app.ClientID) || !kommo.VerifyRevokeSignature(app.ClientSecret, rev.ClientUUID, rev.AccountID, rev.Signature) {
		r.revocationDecided(ctx, s, kommov1.OutcomeIgnored, kommov1.ReasonInvalidHook,
			"The hook's client_uuid or signature does not verify with this integration's credentials")
		return nil
	}
	if s.tokens == nil {
		return nil // nothing to revoke; decided once a grant exists
	}
	if account == 0 {
		return nil // the account concern looks it up; the hook waits for it
	}
	if !s.tokens.ExpiresAt.After(s.now) {
		return nil // an expired access token proves nothing; the grant concern refreshes it first
	}
	if r.waiting(s, concernRevocation) {
		return nil
	}
	if ok, err := r.liveCheck(ctx, s); !ok || err != nil {
		return err
	}
	if ok, err := r.tokenContent(ctx, s); !ok || err != nil {
		return err
	}
	_, err = r.Kommo.Account(ctx, s.host(), s.tokens.AccessToken)
	switch {
	case err == nil:
		s.succeeded(concernRevocation)
		r.revocationDecided(ctx, s, kommov1.OutcomeIgnored, kommov1.ReasonNotConfirmed,
			"The installation's tokens still work, so the hook is a replay or a forgery")
		return nil
	case kommo.KindOf(err) != kommo.KindUnauthorized:
		reason, _ := reasonOf(err)
		r.failed(ctx, s, concernRevocation, reason, err)
		return nil
	}
	s.succeeded(concernRevocation)
	return r.revoke(ctx, s)
}

// superseded reports whether an install was recorded after the revocation: the hook names
// the install it ends (supersedes), as the object held it when the hook was recorded.
// Hooks recorded before supersedes existed are ordered by their timestamps.
func superseded(inst *kommov1.KommoInstallation) bool {
	rev, auth := inst.Spec.Revocation, inst.Spec.Authorization
	if rev.Supersedes != "" {
		return auth == nil || auth.CodeSecretRef.Name != rev.Supersedes
	}
	if auth != nil {
		return !rev.ReceivedAt.After(auth.ReceivedAt.Time)
	}
	// Long-lived mode: a token set up after the revocation.
	return inst.Status.InstalledAt != nil && !rev.ReceivedAt.After(inst.Status.InstalledAt.Time)
}

// revoke ends the grant Kommo confirmed dead: the tokens and any code go, and the channel
// is left as Kommo left it (disconnected).
func (r *InstallationReconciler) revoke(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	if err := r.deleteTokens(ctx, s); err != nil {
		return err
	}
	if err := r.deleteCodeSecret(ctx, s); err != nil {
		return err
	}
	st.TokenSecretName, st.AccessTokenExpiresAt, st.RefreshTime = "", nil, nil
	st.ScopeID, st.ConnectedChannel = "", nil
	st.Backoffs = nil
	controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
	r.revocationDecided(ctx, s, kommov1.OutcomeRevoked, kommov1.ReasonRevoked, "The account disabled the integration; tokens deleted")
	return nil
}

// revocationDecided records the outcome of the hook, with an event when a person may
// care: a revocation, or a hook that looks like a replay or a forgery.
func (r *InstallationReconciler) revocationDecided(ctx context.Context, s *installationScope, result, reason, message string) {
	inst := s.inst
	inst.Status.LastRevocation = &kommov1.Outcome{ReceivedAt: inst.Spec.Revocation.ReceivedAt, Result: result,
		Reason: reason, Message: message, Time: metav1.NewTime(s.now)}
	revocationHooks.WithLabelValues(strings.ToLower(result), reason).Inc()
	switch {
	case result == kommov1.OutcomeRevoked:
		r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, eventRevoked, "Revoke", "%s", message)
	case reason == kommov1.ReasonNotConfirmed || reason == kommov1.ReasonInvalidHook:
		r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventRevocationIgnored, "VerifyRevocation", "Ignored an \"access revoked\" hook: %s", message)
	}
	logf.FromContext(ctx).Info("Decided a revocation hook", "result", result, "reason", reason, "accountID", inst.Spec.Revocation.AccountID)
}
