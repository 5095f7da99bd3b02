package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// adoptLegacyStatus carries what a release before lastAttempt, lastRevocation and
// backoffs recorded only on the Authorized condition into those fields, once, so that an
// upgrade repeats no Kommo call: a failed install is not exchanged again, a revoked
// refresh token is not sent again, a revocation is not decided again.
func adoptLegacyStatus(s *installationScope) {
	st := &s.inst.Status
	if st.LastAttempt != nil || st.LastRevocation != nil || st.Backoffs != nil {
		return
	}
	c := meta.FindStatusCondition(st.Conditions, kommov1.ConditionAuthorized)
	if c == nil || c.Status != metav1.ConditionFalse {
		return
	}
	auth, rev := s.inst.Spec.Authorization, s.inst.Spec.Revocation
	switch c.Reason {
	case kommov1.ReasonInvalidCode, kommov1.ReasonCodeNotFound, kommov1.ReasonInvalidState:
		if auth != nil && c.ObservedGeneration == s.inst.Generation && !attemptDone(st, auth) {
			st.LastAttempt = &kommov1.Outcome{ReceivedAt: auth.ReceivedAt, Result: kommov1.OutcomeFailed,
				Reason: c.Reason, Message: c.Message, Time: c.LastTransitionTime}
		}
	case kommov1.ReasonRevoked:
		if rev != nil && s.tokens == nil {
			st.LastRevocation = &kommov1.Outcome{ReceivedAt: rev.ReceivedAt, Result: kommov1.OutcomeRevoked,
				Reason: kommov1.ReasonRevoked, Message: c.Message, Time: c.LastTransitionTime}
		}
	case kommov1.ReasonReinstallRequired:
		if s.refreshable() {
			st.Backoffs = []kommov1.Backoff{{Concern: concernRefresh, Reason: kommov1.ReasonReinstallRequired,
				Message: c.Message, FailedAttempts: 1, LastFailureTime: c.LastTransitionTime}}
		}
	}
}
