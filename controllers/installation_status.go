package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// summarize writes the conditions from what the concerns left in the status and scope:
// Authorized (the grant), Installed (the latest attempt), ChannelConnected and Ready, the
// summary. Ready means the backend can work now: a valid access token and, with chat, a
// connected channel; declared sources that do not sync show last. A failed attempt or a
// failing refresh shows on its own condition.
func summarize(s *installationScope) {
	st := &s.inst.Status
	set := func(c metav1.Condition) {
		c.ObservedGeneration = s.inst.Generation
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if s.integration == nil || !s.inst.DeletionTimestamp.IsZero() {
		// Nothing was looked at (paused, no integration, being deleted): only Ready says why.
		if s.ready != nil {
			set(*s.ready)
		}
		return
	}
	st.TokenSecretVersion = confirmedTokenSecretVersion(s)
	auth := authorizedCondition(s)
	set(auth)
	if installed := installedCondition(s); installed != nil {
		set(*installed)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, kommov1.ConditionInstalled)
	}
	channel := channelCondition(s)
	if channel != nil {
		set(*channel)
	}
	sources := meta.FindStatusCondition(st.Conditions, kommov1.ConditionSourcesSynced) // set by the sources concern

	ready := metav1.Condition{Type: kommov1.ConditionReady, Status: metav1.ConditionTrue, Reason: kommov1.ReasonReady, Message: "Authorized"}
	switch {
	case s.ready != nil:
		ready = *s.ready
	case auth.Status != metav1.ConditionTrue:
		ready.Status, ready.Reason, ready.Message = auth.Status, auth.Reason, auth.Message
	case channel != nil && channel.Status != metav1.ConditionTrue:
		ready.Status, ready.Reason, ready.Message = channel.Status, channel.Reason, channel.Message
	case sources != nil && sources.Status == metav1.ConditionFalse:
		ready.Status, ready.Reason, ready.Message = sources.Status, sources.Reason, sources.Message
	default:
		if channel != nil {
			ready.Message = "Authorized and channel connected"
		}
		if auth.Reason == kommov1.ReasonRefreshFailing {
			ready.Message += "; " + auth.Message
		}
		if a := st.LastAttempt; a != nil && a.Result == kommov1.OutcomeFailed {
			ready.Message += fmt.Sprintf("; the latest install failed (%s) and the previous grant is kept", a.Reason)
		}
	}
	ready.Type = kommov1.ConditionReady
	set(ready)
}

// authorizedCondition says whether the installation holds a working grant.
func authorizedCondition(s *installationScope) metav1.Condition {
	st := &s.inst.Status
	c := metav1.Condition{Type: kommov1.ConditionAuthorized}
	if o := s.authorizedOverride; o != nil {
		c.Status, c.Reason, c.Message = o.Status, o.Reason, o.Message
		return c
	}
	auth := s.inst.Spec.Authorization
	if s.tokens == nil {
		c.Status = metav1.ConditionFalse
		switch {
		case auth != nil && !attemptDone(st, auth):
			c.Status, c.Reason, c.Message = metav1.ConditionUnknown, kommov1.ReasonReconciling, "Exchanging the install's code"
			if b := s.failing(concernAttempt); b != nil {
				c.Status, c.Reason, c.Message = metav1.ConditionFalse, b.Reason, b.Message+"; retrying"
			}
		case st.LastAttempt != nil && st.LastAttempt.Result == kommov1.OutcomeFailed && auth != nil && attemptDone(st, auth) &&
			(st.LastRevocation == nil || st.LastRevocation.Time.Before(&st.LastAttempt.Time)):
			c.Reason, c.Message = st.LastAttempt.Reason, st.LastAttempt.Message+"; the account must install the integration again"
		case st.LastRevocation != nil && st.LastRevocation.Result == kommov1.OutcomeRevoked:
			c.Reason, c.Message = kommov1.ReasonRevoked, "The account disabled the integration; a new install re-enables it"
		case st.InstalledAt != nil:
			c.Reason, c.Message = kommov1.ReasonReinstallRequired, "The token Secret was deleted; the account must install the integration again"
		case auth == nil:
			c.Reason, c.Message = kommov1.ReasonAwaitingAuthorization, "No install received yet"
		default:
			c.Status, c.Reason, c.Message = metav1.ConditionUnknown, kommov1.ReasonReconciling, "Reconciling"
		}
		return c
	}
	expires := s.tokens.ExpiresAt.UTC().Format(time.RFC3339)
	refresh := s.failing(concernRefresh)
	switch {
	case refresh != nil && refresh.Reason == kommov1.ReasonReinstallRequired:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kommov1.ReasonReinstallRequired,
			"Kommo revoked the refresh token; the account must install the integration again"
	case !s.tokens.ExpiresAt.After(s.now) && refresh != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, refresh.Reason, "The access token expired at "+expires+" and the refresh fails: "+refresh.Message
	case !s.tokens.ExpiresAt.After(s.now):
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kommov1.ReasonTokenExpired, "The access token expired at "+expires+"; refreshing"
	case refresh != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, kommov1.ReasonRefreshFailing,
			fmt.Sprintf("The refresh fails (%s: %s); the access token is valid until %s", refresh.Reason, refresh.Message, expires)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, kommov1.ReasonAuthorized, "The access token is valid until "+expires
	}
	return c
}

// installedCondition says what became of the latest install; nil in long-lived mode.
func installedCondition(s *installationScope) *metav1.Condition {
	if s.inst.Spec.LongLivedTokenSecretRef != nil {
		return nil
	}
	st := &s.inst.Status
	c := &metav1.Condition{Type: kommov1.ConditionInstalled}
	auth := s.inst.Spec.Authorization
	switch {
	case auth == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kommov1.ReasonAwaitingAuthorization, "No install received yet"
	case attemptDone(st, auth) && (st.LastAttempt == nil || st.LastAttempt.Result == kommov1.OutcomeSucceeded):
		c.Status, c.Reason = metav1.ConditionTrue, kommov1.ReasonExchanged
		c.Message = "The install received at " + auth.ReceivedAt.UTC().Format(time.RFC3339) + " was exchanged for tokens"
	case attemptDone(st, auth):
		c.Status, c.Reason = metav1.ConditionFalse, st.LastAttempt.Reason
		c.Message = "The install received at " + auth.ReceivedAt.UTC().Format(time.RFC3339) + " failed: " + st.LastAttempt.Message
	case s.failing(concernAttempt) != nil:
		b := s.failing(concernAttempt)
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, b.Reason, b.Message+"; retrying while the code is valid"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, kommov1.ReasonReconciling, "Exchanging the install's code"
	}
	return c
}

// channelCondition says whether the chat channel is connected for the current install.
func channelCondition(s *installationScope) *metav1.Condition {
	st := &s.inst.Status
	c := &metav1.Condition{Type: kommov1.ConditionChannelConnected}
	switch {
	case s.chat == nil:
		return nil
	case channelUpToDate(st, s.chat):
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, kommov1.ReasonConnected, "Connected channel "+s.chat.ChannelID
	case s.channel != nil:
		c.Status, c.Reason, c.Message = s.channel.Status, s.channel.Reason, s.channel.Message
	case s.failing(concernChannel) != nil:
		b := s.failing(concernChannel)
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, b.Reason, b.Message+"; retrying"
	case st.LastRevocation != nil && st.LastRevocation.Result == kommov1.OutcomeRevoked && s.tokens == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kommov1.ReasonDisconnected, "Disconnected by the revocation"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, kommov1.ReasonConnectPending, "Connecting channel "+s.chat.ChannelID
	}
	return c
}
