package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

const (
	// codeLifetime is how long Kommo accepts an authorization code.
	codeLifetime = 20 * time.Minute
	// dependencyPoll is how often a missing Secret is looked for again: Secrets the
	// operator does not own are not watched.
	dependencyPoll = time.Minute
	// longLivedWarning is how long before a long-lived token expires a Warning is raised.
	longLivedWarning = 7 * 24 * time.Hour
	// longLivedPoll is how often a long-lived token's Secret is read again for a new token.
	longLivedPoll = time.Hour
)

// Event reasons. Events are raised only for transitions someone may act on.
const (
	eventInstalled         = "Installed"
	eventReinstalled       = "Reinstalled"
	eventRevoked           = "Revoked"
	eventInvalidRevocation = "InvalidRevocation"
	eventInvalidClient     = "InvalidClient"
	eventInvalidCode       = "InvalidCode"
	eventInvalidState      = "InvalidState"
	eventReinstallRequired = "ReinstallRequired"
	eventChannelRejected   = "ChannelRejected"
	eventTokenExpiring     = "TokenExpiring"
	eventBlocked           = "Blocked"
	eventDisconnected      = "ChannelDisconnected"
	eventDisconnectFailed  = "DisconnectFailed"
)

// actionableFailures are the Kommo failures worth a Warning event, by condition reason.
var actionableFailures = map[string]string{
	kommov1.ReasonInvalidClient:    eventInvalidClient,
	kommov1.ReasonBlocked:          eventBlocked,
	kommov1.ReasonInvalidSignature: eventChannelRejected,
	kommov1.ReasonChannelNotFound:  eventChannelRejected,
}

// terminalReasons end work on the current generation: nothing changes until the spec
// does (a new install, a new revocation).
var terminalReasons = map[string]bool{
	kommov1.ReasonInvalidCode:       true,
	kommov1.ReasonCodeNotFound:      true,
	kommov1.ReasonInvalidState:      true,
	kommov1.ReasonReinstallRequired: true,
	kommov1.ReasonRevoked:           true,
}

// loadIntegration finds the KommoIntegration and its client secret, and checks the account
// domain against its accountDomains before anything is sent to that host.
func (r *InstallationReconciler) loadIntegration(ctx context.Context, s *installationScope) (bool, error) {
	inst := s.inst
	integration := &kommov1.KommoIntegration{}
	key := types.NamespacedName{Namespace: inst.Namespace, Name: inst.Spec.IntegrationRef.Name}
	if err := r.Get(ctx, key, integration); err != nil {
		if apierrors.IsNotFound(err) {
			s.notReady(kommov1.ReasonIntegrationNotFound, fmt.Sprintf("KommoIntegration %s not found", key.Name))
			s.clean = false
			return true, nil
		}
		return true, err
	}
	s.integration = integration
	if inst.Labels[kommov1.LabelIntegration] != integration.Name {
		// Installations declared by hand may lack it; the integration watch selects on it.
		setLabel(inst, kommov1.LabelIntegration, integration.Name)
	}
	if integration.Annotations[kommov1.AnnotationPaused] == "true" {
		s.notReady(kommov1.ReasonPaused, "The KommoIntegration has the "+kommov1.AnnotationPaused+" annotation")
		s.clean = false
		return true, nil
	}
	if !kommo.MatchesDomain(inst.Spec.AccountDomain, effectiveDomains(integration)) {
		s.notReady(kommov1.ReasonForbiddenDomain, fmt.Sprintf("Account domain %s is not under the integration's accountDomains", inst.Spec.AccountDomain))
		return true, nil
	}
	secret, err := secretValue(ctx, r.APIReader, inst.Namespace, integration.Spec.ClientSecretRef)
	if err != nil {
		return missingSecret(s, err, s.notReadyBecause)
	}
	s.app = kommo.App{ClientID: integration.Spec.ClientID, ClientSecret: secret, RedirectURI: integration.Spec.RedirectURI}
	s.chat = effectiveChat(integration)
	return false, nil
}

// missingSecret hands a missing referenced Secret to record (with a message naming it) and
// polls for it, since Secrets the operator does not own are not watched; any other error is
// an API error and returned.
func missingSecret(s *installationScope, err error, record func(message string)) (bool, error) {
	var missing *errSecretMissing
	if !errors.As(err, &missing) {
		return true, err
	}
	record(missing.Error())
	s.clean = false
	s.requeue(dependencyPoll)
	return true, nil
}

// notReadyBecause records a missing Secret of the KommoIntegration on Ready.
func (s *installationScope) notReadyBecause(message string) {
	s.notReady(kommov1.ReasonIntegrationNotReady, message)
}

// saveUnsavedTokens writes tokens an earlier reconcile received but could not persist.
func (r *InstallationReconciler) saveUnsavedTokens(ctx context.Context, s *installationScope) (bool, error) {
	v, ok := r.unsaved.Load(r.key(s))
	if !ok {
		return false, nil
	}
	t := v.(tokens)
	if err := r.saveTokens(ctx, s, t); err != nil {
		return true, err
	}
	return false, nil
}

// reconcileRevocation acts on an "access revoked" hook newer than the latest install:
// with a valid signature the tokens are deleted and the installation stops; with an
// invalid one nothing changes but a Warning event.
func (r *InstallationReconciler) reconcileRevocation(ctx context.Context, s *installationScope) (bool, error) {
	inst, rev := s.inst, s.inst.Spec.Revocation
	if rev == nil {
		return false, nil
	}
	if auth := inst.Spec.Authorization; auth != nil && !rev.ReceivedAt.After(auth.ReceivedAt.Time) {
		return false, nil // a reinstall came after it
	}
	if inst.Spec.Authorization == nil && inst.Status.InstalledAt != nil && !rev.ReceivedAt.After(inst.Status.InstalledAt.Time) {
		return false, nil // long-lived mode: a token set up after the revocation
	}
	if reason := r.revocationInvalid(s, rev); reason != "" {
		key := r.key(s)
		if last, ok := r.warned.Load(key); !ok || last != receivedAtKey(rev.ReceivedAt) {
			r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventInvalidRevocation, "VerifyRevocation",
				"Ignored an \"access revoked\" hook: %s", reason)
			r.warned.Store(key, receivedAtKey(rev.ReceivedAt))
		}
		logf.FromContext(ctx).Info("Ignored an invalid revocation", "reason", reason)
		return false, nil
	}

	revokedAlready := meta.IsStatusConditionPresentAndEqual(inst.Status.Conditions, kommov1.ConditionAuthorized, metav1.ConditionFalse) &&
		meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionAuthorized).Reason == kommov1.ReasonRevoked
	if err := r.deleteTokens(ctx, s); err != nil {
		return true, err
	}
	if auth := inst.Spec.Authorization; auth != nil {
		if err := r.deleteCodeSecret(ctx, s); err != nil {
			return true, err
		}
	}
	st := &inst.Status
	st.TokenSecretName, st.AccessTokenExpiresAt, st.RefreshTime = "", nil, nil
	st.ScopeID, st.ConnectedChannel = "", nil
	st.FailedAttempts = 0
	// Kommo disconnects the channel itself when the integration is disabled.
	controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
	s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionFalse, kommov1.ReasonRevoked,
		"The account disabled the integration; a new install re-enables it")
	if s.chat != nil {
		s.setCondition(kommov1.ConditionChannelConnected, metav1.ConditionFalse, kommov1.ReasonDisconnected, "Disconnected by the revocation")
	}
	if !revokedAlready {
		r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, eventRevoked, "Revoke", "The account disabled the integration; tokens deleted")
		logf.FromContext(ctx).Info("Revoked installation", "accountID", rev.AccountID)
	}
	return true, nil
}

// revocationInvalid says why a revocation must be ignored, or "" when it is authentic.
func (r *InstallationReconciler) revocationInvalid(s *installationScope, rev *kommov1.Revocation) string {
	switch {
	case !strings.EqualFold(rev.ClientUUID, s.app.ClientID):
		return "client_uuid is not this integration's clientID"
	case !kommo.VerifyRevokeSignature(s.app.ClientSecret, rev.ClientUUID, rev.AccountID, rev.Signature):
		return "the signature does not verify with the client secret"
	case s.inst.Status.AccountID != 0 && rev.AccountID != strconv.FormatInt(s.inst.Status.AccountID, 10):
		return "account_id is not this installation's account"
	}
	return ""
}

// reconcileAuthorization makes sure the installation holds tokens for its latest install:
// a new code is exchanged once, and the tokens written before anything else.
func (r *InstallationReconciler) reconcileAuthorization(ctx context.Context, s *installationScope) (bool, error) {
	inst := s.inst
	if inst.Spec.LongLivedTokenSecretRef != nil {
		return r.reconcileLongLivedToken(ctx, s)
	}
	auth := inst.Spec.Authorization
	if auth == nil {
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionFalse, kommov1.ReasonAwaitingAuthorization, "No install received yet")
		return true, nil
	}
	if terminalAtGeneration(s, kommov1.ConditionAuthorized) {
		return true, nil // only a new install helps
	}
	if err := r.loadTokens(ctx, s); err != nil {
		return true, err
	}
	installed := inst.Status.InstalledAt != nil && !auth.ReceivedAt.After(inst.Status.InstalledAt.Time)
	s.fresh = !installed
	if s.tokens != nil && s.tokens.Authorization == receivedAtKey(auth.ReceivedAt) {
		return false, nil // exchanged already, maybe by a reconcile that did not finish
	}
	if installed {
		return r.terminal(s, kommov1.ConditionAuthorized, kommov1.ReasonReinstallRequired, eventReinstallRequired,
			"The token Secret was deleted; the account must install the integration again"), nil
	}

	if ref := s.integration.Spec.StateSecretRef; ref != nil && !auth.FromWidget {
		key, err := secretValue(ctx, r.APIReader, inst.Namespace, *ref)
		if err != nil {
			return missingSecret(s, err, s.notReadyBecause)
		}
		if err := kommo.VerifyState([]byte(key), auth.State, s.now); err != nil {
			return r.terminal(s, kommov1.ConditionAuthorized, kommov1.ReasonInvalidState, eventInvalidState,
				"The install's state is invalid: "+stateProblem(err)), nil
		}
	}
	if s.now.Sub(auth.ReceivedAt.Time) > codeLifetime {
		return r.terminal(s, kommov1.ConditionAuthorized, kommov1.ReasonInvalidCode, eventInvalidCode,
			"The code expired before it could be exchanged; the account must install again"), nil
	}
	code, err := secretValue(ctx, r.APIReader, inst.Namespace, auth.CodeSecretRef)
	if err != nil {
		var missing *errSecretMissing
		if errors.As(err, &missing) {
			return r.terminal(s, kommov1.ConditionAuthorized, kommov1.ReasonCodeNotFound, "",
				missing.Error()+"; the account must install again"), nil
		}
		return true, err
	}
	if ok, err := r.mayCallKommo(ctx, s); !ok || err != nil {
		return true, err
	}

	tok, err := r.Kommo.ExchangeCode(ctx, inst.Spec.AccountDomain, s.app, code)
	if err != nil {
		if kommo.KindOf(err) == kommo.KindInvalidCode {
			return r.terminal(s, kommov1.ConditionAuthorized, kommov1.ReasonInvalidCode, eventInvalidCode,
				"Kommo rejected the code (expired or already used); the account must install again"), nil
		}
		return r.kommoFailure(ctx, s, kommov1.ConditionAuthorized, err), nil
	}
	t := tokens{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt,
		AccountDomain: inst.Spec.AccountDomain, Authorization: receivedAtKey(auth.ReceivedAt),
	}
	if claims, err := kommo.ParseClaims(tok.AccessToken); err == nil {
		t.AccountID = claims.AccountID
	}
	if err := r.saveTokens(ctx, s, t); err != nil {
		return true, err
	}
	if err := r.deleteCodeSecret(ctx, s); err != nil {
		// The code is spent either way; the Secret goes with its KommoIntegration.
		logf.FromContext(ctx).Error(err, "Deleting the exchanged code Secret")
	}
	r.kommoSuccess(s)
	r.planRefresh(s, s.now)
	s.inst.Status.LastRefreshTime = nil
	s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonAuthorized, "Exchanged the install's code for tokens")
	reason, verb := eventInstalled, "Installed"
	if inst.Status.InstalledAt != nil {
		reason, verb = eventReinstalled, "Reinstalled"
	}
	r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, reason, "Exchange", "%s in %s; tokens in Secret %s",
		verb, inst.Spec.AccountDomain, tokenSecretName(inst.Name))
	logf.FromContext(ctx).Info("Exchanged code for tokens", "account", inst.Spec.AccountDomain, "secret", tokenSecretName(inst.Name))
	return false, nil
}

// reconcileLongLivedToken copies a private integration's long-lived token into the token
// Secret and tracks its expiry: no exchange, no refresh.
func (r *InstallationReconciler) reconcileLongLivedToken(ctx context.Context, s *installationScope) (bool, error) {
	inst := s.inst
	value, err := secretValue(ctx, r.APIReader, inst.Namespace, *inst.Spec.LongLivedTokenSecretRef)
	if err != nil {
		return missingSecret(s, err, func(message string) {
			s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionFalse, kommov1.ReasonSecretNotFound, message)
		})
	}
	if err := r.loadTokens(ctx, s); err != nil {
		return true, err
	}
	claims, err := kommo.ParseClaims(value)
	if err != nil {
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionFalse, kommov1.ReasonInvalidToken,
			"The long-lived token is not a Kommo access token (a JWT)")
		s.requeue(longLivedPoll)
		return true, nil
	}
	s.fresh = s.tokens == nil || s.tokens.AccessToken != value || inst.Status.InstalledAt == nil
	if s.fresh {
		t := tokens{AccessToken: value, ExpiresAt: claims.ExpiresAt, AccountDomain: inst.Spec.AccountDomain, AccountID: claims.AccountID}
		if err := r.saveTokens(ctx, s, t); err != nil {
			return true, err
		}
	}
	inst.Status.AccessTokenExpiresAt = ptr.To(metav1.NewTime(claims.ExpiresAt))
	inst.Status.RefreshTime = nil
	left := claims.ExpiresAt.Sub(s.now)
	switch {
	case left <= 0:
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionFalse, kommov1.ReasonTokenExpired,
			"The long-lived token expired at "+claims.ExpiresAt.UTC().Format(time.RFC3339)+"; put a new one in its Secret")
		s.requeue(longLivedPoll)
		return true, nil
	case left <= longLivedWarning:
		expiring := meta.FindStatusCondition(inst.Status.Conditions, kommov1.ConditionAuthorized)
		if expiring == nil || !strings.HasPrefix(expiring.Message, "Long-lived token expires") {
			r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventTokenExpiring, "CheckExpiry",
				"The long-lived token expires at %s; put a new one in its Secret", claims.ExpiresAt.UTC().Format(time.RFC3339))
		}
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonAuthorized,
			"Long-lived token expires at "+claims.ExpiresAt.UTC().Format(time.RFC3339))
		s.requeue(min(left, longLivedPoll))
	default:
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonAuthorized, "Using the long-lived token")
		s.requeue(min(left-longLivedWarning, longLivedPoll))
	}
	return false, nil
}

// reconcileAccount looks up the account id and amojo_id after every install: new tokens
// carry neither until the lookup writes them to the token Secret.
func (r *InstallationReconciler) reconcileAccount(ctx context.Context, s *installationScope) (bool, error) {
	st := &s.inst.Status
	if s.tokens == nil {
		return true, nil
	}
	if s.tokens.AmojoID != "" && st.AccountID != 0 && st.AmojoID != "" {
		return false, nil
	}
	if ok, err := r.mayCallKommo(ctx, s); !ok || err != nil {
		return true, err
	}
	account, err := r.Kommo.Account(ctx, s.inst.Spec.AccountDomain, s.tokens.AccessToken)
	if err != nil {
		if kommo.KindOf(err) == kommo.KindUnauthorized && s.inst.Spec.LongLivedTokenSecretRef == nil {
			st.RefreshTime = ptr.To(metav1.NewTime(s.now.Truncate(time.Second))) // refresh first next time
		}
		return r.kommoFailure(ctx, s, kommov1.ConditionAuthorized, err), nil
	}
	r.kommoSuccess(s)
	if c := meta.FindStatusCondition(st.Conditions, kommov1.ConditionAuthorized); c == nil || c.Status != metav1.ConditionTrue {
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonAuthorized, "Tokens work for account "+strconv.FormatInt(account.ID, 10))
	}
	st.AccountID, st.AmojoID = account.ID, account.AmojoID
	setLabel(s.inst, kommov1.LabelAccountID, strconv.FormatInt(account.ID, 10))
	t := *s.tokens
	t.AccountID, t.AmojoID = account.ID, account.AmojoID
	// Persisted at once, so that a failing connect does not repeat the lookup.
	return false, r.saveTokens(ctx, s, t)
}

// reconcileChannel connects the chat channel after every install and whenever the
// effective chat settings change, and records the scope_id.
func (r *InstallationReconciler) reconcileChannel(ctx context.Context, s *installationScope) (bool, error) {
	inst, st := s.inst, &s.inst.Status
	if s.chat == nil {
		// Chat was removed from the integration: nothing to connect and nothing this
		// operator can sign a disconnect with any more.
		meta.RemoveStatusCondition(&st.Conditions, kommov1.ConditionChannelConnected)
		st.ConnectedChannel, st.ScopeID = nil, ""
		if s.tokens != nil {
			s.tokens.ScopeID = ""
		}
		controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
		return false, nil
	}
	connected := meta.IsStatusConditionTrue(st.Conditions, kommov1.ConditionChannelConnected)
	if !s.fresh && connected && st.ConnectedChannel != nil && st.ConnectedChannel.ChatStatus == *s.chat {
		return false, nil
	}
	if st.AmojoID == "" {
		s.setCondition(kommov1.ConditionChannelConnected, metav1.ConditionFalse, kommov1.ReasonConnectPending, "Waiting for the account's amojo_id")
		return true, nil
	}
	secret, err := secretValue(ctx, r.APIReader, inst.Namespace, s.integration.Spec.Chat.SecretRef)
	if err != nil {
		return missingSecret(s, err, func(message string) {
			s.setCondition(kommov1.ConditionChannelConnected, metav1.ConditionFalse, kommov1.ReasonSecretNotFound, message)
		})
	}
	if ok, err := r.mayCallKommo(ctx, s); !ok || err != nil {
		return true, err
	}
	// Hold the finalizer before the channel can be connected, so that a deletion racing
	// this reconcile still disconnects.
	if controllerutil.AddFinalizer(inst, kommov1.FinalizerChannel) {
		if err := r.patchMetadata(ctx, s); err != nil {
			return true, err
		}
	}
	conn, err := r.Kommo.Connect(ctx, inst.Spec.AccountDomain, kommo.Channel{ID: s.chat.ChannelID, Secret: secret},
		kommo.ConnectRequest{AmojoID: st.AmojoID, Title: s.chat.Title, HookAPIVersion: s.chat.HookAPIVersion})
	if err != nil {
		return r.kommoFailure(ctx, s, kommov1.ConditionChannelConnected, err), nil
	}
	r.kommoSuccess(s)
	st.ScopeID, st.ConnectedAt, st.ConnectedChannel = conn.ScopeID, ptr.To(metav1.NewTime(s.now)), &kommov1.ConnectedChannel{ChatStatus: *s.chat}
	s.tokens.ScopeID = conn.ScopeID
	s.setCondition(kommov1.ConditionChannelConnected, metav1.ConditionTrue, kommov1.ReasonConnected, "Connected channel "+s.chat.ChannelID)
	logf.FromContext(ctx).Info("Connected channel", "channel", s.chat.ChannelID, "scopeID", conn.ScopeID)
	return false, nil
}

// reconcileRefresh refreshes the tokens at status.refreshTime or when asked to by the
// refresh-requested-at annotation. The refresh token is single-use: it is read live and the
// new pair is persisted before anything else happens.
func (r *InstallationReconciler) reconcileRefresh(ctx context.Context, s *installationScope) (bool, error) {
	inst, st := s.inst, &s.inst.Status
	if inst.Spec.LongLivedTokenSecretRef != nil || s.tokens == nil {
		return false, nil
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
		return false, nil
	}
	if ok, err := r.mayCallKommo(ctx, s); !ok || err != nil {
		return true, err
	}
	if err := r.loadTokens(ctx, s); err != nil { // live, whatever was read before
		return true, err
	}
	if s.tokens == nil || s.tokens.RefreshToken == "" {
		s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionFalse, kommov1.ReasonReinstallRequired,
			"The token Secret has no refresh token; the account must install the integration again")
		return true, nil
	}
	tok, err := r.Kommo.Refresh(ctx, inst.Spec.AccountDomain, s.app, s.tokens.RefreshToken)
	if err != nil {
		if kommo.KindOf(err) == kommo.KindTokenRevoked {
			tokenRefreshes.WithLabelValues("revoked").Inc()
			return r.terminal(s, kommov1.ConditionAuthorized, kommov1.ReasonReinstallRequired, eventReinstallRequired,
				"Kommo revoked the refresh token; the account must install the integration again"), nil
		}
		tokenRefreshes.WithLabelValues("failure").Inc()
		return r.kommoFailure(ctx, s, kommov1.ConditionAuthorized, err), nil
	}
	t := *s.tokens
	t.AccessToken, t.RefreshToken, t.ExpiresAt = tok.AccessToken, tok.RefreshToken, tok.ExpiresAt
	if err := r.saveTokens(ctx, s, t); err != nil {
		return true, err
	}
	tokenRefreshes.WithLabelValues("success").Inc()
	r.kommoSuccess(s)
	st.LastRefreshTime = ptr.To(metav1.NewTime(s.now))
	r.planRefresh(s, s.now)
	s.setCondition(kommov1.ConditionAuthorized, metav1.ConditionTrue, kommov1.ReasonAuthorized, "Refreshed the tokens")
	logf.FromContext(ctx).Info("Refreshed tokens", "expiresAt", tok.ExpiresAt.UTC().Format(time.RFC3339), "nextRefresh", st.RefreshTime.UTC().Format(time.RFC3339))
	return false, nil
}

// reconcileTokenSecret writes what the account lookup and the connect added to the token
// Secret (account id, amojo_id, scope_id) and repairs edits to it.
func (r *InstallationReconciler) reconcileTokenSecret(ctx context.Context, s *installationScope) (bool, error) {
	if s.tokens == nil {
		return false, nil
	}
	return false, r.saveTokens(ctx, s, *s.tokens)
}

// completeInstall records the current install as fully processed once it is authorized
// and, with chat, connected.
func (r *InstallationReconciler) completeInstall(_ context.Context, s *installationScope) (bool, error) {
	st := &s.inst.Status
	if !s.fresh || !meta.IsStatusConditionTrue(st.Conditions, kommov1.ConditionAuthorized) {
		return false, nil
	}
	if s.chat != nil && !meta.IsStatusConditionTrue(st.Conditions, kommov1.ConditionChannelConnected) {
		return false, nil
	}
	if auth := s.inst.Spec.Authorization; auth != nil {
		st.InstalledAt = auth.ReceivedAt.DeepCopy()
	} else {
		st.InstalledAt = ptr.To(metav1.NewMicroTime(s.now))
	}
	return false, nil
}

// mayCallKommo gates every Kommo call: not while the persisted backoff runs, and not on a
// stale cache. The installation is read live first: when the cache is behind, an earlier
// reconcile's outcome (a terminal failure, a refresh, a connect) is not visible yet and
// the call could repeat it, spending a single-use code or refresh token. Such a pass
// stops without writing and runs again shortly.
func (r *InstallationReconciler) mayCallKommo(ctx context.Context, s *installationScope) (bool, error) {
	if r.inBackoff(s) {
		return false, nil
	}
	live := &kommov1.KommoInstallation{}
	if err := r.APIReader.Get(ctx, r.key(s), live); err != nil {
		return false, err
	}
	if live.ResourceVersion != s.original.ResourceVersion {
		s.stale = true
		return false, nil
	}
	return true, nil
}

// loadTokens reads the token Secret live.
func (r *InstallationReconciler) loadTokens(ctx context.Context, s *installationScope) error {
	secret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}, secret)
	switch {
	case apierrors.IsNotFound(err):
		s.tokens = nil
	case err != nil:
		return err
	default:
		t := readTokens(secret)
		s.tokens = &t
	}
	return nil
}

// saveTokens writes the token Secret, retrying from memory: Kommo has already spent the
// previous refresh token, so these may be the only valid tokens in existence. When the
// API server stays unreachable they are kept for the next reconcile.
func (r *InstallationReconciler) saveTokens(ctx context.Context, s *installationScope, t tokens) error {
	desired := buildTokenSecret(s.inst, s.integration, t)
	key := r.key(s)
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 8, Cap: 5 * time.Second},
		func(ctx context.Context) (bool, error) {
			err := r.writeSecret(ctx, desired, s.inst.UID)
			if errors.Is(err, errNotOwned) {
				return false, err
			}
			if err != nil {
				logf.FromContext(ctx).Error(err, "Writing the token Secret, retrying", "secret", desired.Name)
			}
			return err == nil, nil
		})
	if err != nil {
		r.unsaved.Store(key, t)
		return fmt.Errorf("writing token Secret %s: %w", desired.Name, err)
	}
	r.unsaved.Delete(key)
	s.tokens = &t
	s.inst.Status.TokenSecretName = desired.Name
	s.inst.Status.AccessTokenExpiresAt = ptr.To(metav1.NewTime(t.ExpiresAt))
	return nil
}

// writeSecret creates desired or updates the live Secret to it, leaving it alone when it
// is already so.
func (r *InstallationReconciler) writeSecret(ctx context.Context, desired *corev1.Secret, owner types.UID) error {
	live := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), live)
	if apierrors.IsNotFound(err) {
		return r.Create(ctx, desired.DeepCopy())
	}
	if err != nil {
		return err
	}
	if ref := metav1.GetControllerOf(live); ref == nil || ref.UID != owner {
		return fmt.Errorf("secret %s: %w", desired.Name, errNotOwned)
	}
	if equality.Semantic.DeepEqual(live.Data, desired.Data) && live.Type == desired.Type &&
		subset(desired.Labels, live.Labels) && subset(desired.Annotations, live.Annotations) {
		return nil
	}
	updated := live.DeepCopy()
	updated.Data = desired.Data
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	for k, v := range desired.Labels {
		updated.Labels[k] = v
	}
	for k, v := range desired.Annotations {
		updated.Annotations[k] = v
	}
	return r.Update(ctx, updated) // optimistic: a concurrent writer makes this fail and retry
}

// deleteTokens deletes the token Secret.
func (r *InstallationReconciler) deleteTokens(ctx context.Context, s *installationScope) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.inst.Namespace, Name: tokenSecretName(s.inst.Name)}}
	r.unsaved.Delete(r.key(s))
	s.tokens = nil
	return client.IgnoreNotFound(r.Delete(ctx, secret))
}

// deleteCodeSecret deletes the Secret of the install's code once it is of no more use.
func (r *InstallationReconciler) deleteCodeSecret(ctx context.Context, s *installationScope) error {
	auth := s.inst.Spec.Authorization
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.inst.Namespace, Name: auth.CodeSecretRef.Name}}
	return client.IgnoreNotFound(r.Delete(ctx, secret))
}

// planRefresh sets the next refresh from the current token's lifetime.
func (r *InstallationReconciler) planRefresh(s *installationScope, issued time.Time) {
	jitter := rand.Float64
	if r.Jitter != nil {
		jitter = r.Jitter
	}
	at := RefreshTime(issued, s.tokens.ExpiresAt, jitter())
	s.inst.Status.RefreshTime = ptr.To(metav1.NewTime(at))
	s.requeue(at.Sub(s.now))
}

// inBackoff holds Kommo calls back while the persisted backoff of earlier failures runs.
func (r *InstallationReconciler) inBackoff(s *installationScope) bool {
	st := s.inst.Status
	if st.FailedAttempts == 0 || st.LastFailureTime == nil {
		return false
	}
	wait := r.backoff(failureTransient, st.FailedAttempts, 0)
	if c := failingCondition(s); c != nil {
		wait = r.backoff(classOfReason(c.Reason), st.FailedAttempts, 0)
	}
	if left := st.LastFailureTime.Add(wait).Sub(s.now); left > 0 {
		s.clean = false
		s.requeue(left)
		return true
	}
	return false
}

// kommoFailure records a failed Kommo call: the condition says what happened, and the
// persisted backoff decides when to try again.
func (r *InstallationReconciler) kommoFailure(ctx context.Context, s *installationScope, condition string, err error) bool {
	st := &s.inst.Status
	reason, class := reasonOf(err)
	st.FailedAttempts++
	st.LastFailureTime = ptr.To(metav1.NewTime(s.now))
	st.FailedGeneration = s.inst.Generation
	retryAfter, _ := kommo.RetryAfterOf(err)
	wait := r.backoff(class, st.FailedAttempts, retryAfter)
	s.setCondition(condition, metav1.ConditionFalse, reason, fmt.Sprintf("%v; retrying in %s", err, wait.Round(time.Second)))
	s.clean = false
	s.requeue(wait)
	// A person can act on these; transient failures show in the condition only.
	if event := actionableFailures[reason]; event != "" && st.FailedAttempts == 1 {
		r.Recorder.Eventf(s.inst, nil, corev1.EventTypeWarning, event, "CallKommo", "%v", err)
	}
	logf.FromContext(ctx).Info("Kommo call failed", "error", err.Error(), "attempts", st.FailedAttempts, "retryIn", wait.Round(time.Second).String())
	return true
}

// kommoSuccess ends the failure streak.
func (r *InstallationReconciler) kommoSuccess(s *installationScope) {
	s.inst.Status.FailedAttempts = 0
}

// terminal records a failure that only a new install (a spec change) can fix.
func (r *InstallationReconciler) terminal(s *installationScope, condition, reason, event, message string) bool {
	already := terminalAtGeneration(s, condition)
	s.setCondition(condition, metav1.ConditionFalse, reason, message)
	if event != "" && !already {
		r.Recorder.Eventf(s.inst, nil, corev1.EventTypeWarning, event, "Authorize", "%s", message)
	}
	return true
}

// terminalAtGeneration reports whether a terminal failure already ended work on this generation.
func terminalAtGeneration(s *installationScope, condition string) bool {
	c := meta.FindStatusCondition(s.inst.Status.Conditions, condition)
	return c != nil && c.Status == metav1.ConditionFalse && terminalReasons[c.Reason] && c.ObservedGeneration == s.inst.Generation
}

// failingCondition is the condition the last Kommo failure was recorded on.
func failingCondition(s *installationScope) *metav1.Condition {
	for _, typ := range []string{kommov1.ConditionAuthorized, kommov1.ConditionChannelConnected} {
		if c := meta.FindStatusCondition(s.inst.Status.Conditions, typ); c != nil && c.Status == metav1.ConditionFalse {
			return c
		}
	}
	return nil
}

// reasonOf maps a Kommo error to a condition reason and a backoff class.
func reasonOf(err error) (string, failureClass) {
	switch kommo.KindOf(err) {
	case kommo.KindRateLimited:
		return kommov1.ReasonRateLimited, failureTransient
	case kommo.KindBlocked:
		return kommov1.ReasonBlocked, failureBlocked
	case kommo.KindInvalidClient:
		return kommov1.ReasonInvalidClient, failureConfig
	case kommo.KindInvalidSignature:
		return kommov1.ReasonInvalidSignature, failureConfig
	case kommo.KindNotFound:
		return kommov1.ReasonChannelNotFound, failureConfig
	case kommo.KindBadRequest, kommo.KindInvalidCode, kommo.KindTokenRevoked:
		return kommov1.ReasonKommoRejected, failureConfig
	}
	return kommov1.ReasonKommoUnavailable, failureTransient
}

// classOfReason is the backoff class of a condition reason set by kommoFailure.
func classOfReason(reason string) failureClass {
	switch reason {
	case kommov1.ReasonBlocked:
		return failureBlocked
	case kommov1.ReasonInvalidClient, kommov1.ReasonInvalidSignature, kommov1.ReasonChannelNotFound, kommov1.ReasonKommoRejected:
		return failureConfig
	}
	return failureTransient
}

// stateProblem describes a state verification failure without echoing the state.
func stateProblem(err error) string {
	switch {
	case errors.Is(err, kommo.ErrStateExpired):
		return "expired"
	case errors.Is(err, kommo.ErrStateSignature):
		return "bad signature"
	}
	return "missing or malformed"
}

func setLabel(obj client.Object, key, value string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[key] = value
	obj.SetLabels(labels)
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// errNotOwned: a Secret with the token Secret's name exists and belongs to someone else.
var errNotOwned = errors.New("exists and is not controlled by this installation; rename or delete it")

// effectiveDomains are the integration's account domains, defaults applied.
func effectiveDomains(integration *kommov1.KommoIntegration) []string {
	if len(integration.Spec.AccountDomains) > 0 {
		return integration.Spec.AccountDomains
	}
	return kommo.DefaultAccountDomains
}

// effectiveChat is the integration's chat configuration, defaults applied.
func effectiveChat(integration *kommov1.KommoIntegration) *kommov1.ChatStatus {
	chat := integration.Spec.Chat
	if chat == nil {
		return nil
	}
	out := &kommov1.ChatStatus{ChannelID: strings.ToLower(chat.ChannelID), Title: chat.Title, HookAPIVersion: chat.HookAPIVersion}
	if out.Title == "" {
		out.Title = integration.Name
	}
	if out.HookAPIVersion == "" {
		out.HookAPIVersion = kommo.DefaultHookAPIVersion
	}
	return out
}
