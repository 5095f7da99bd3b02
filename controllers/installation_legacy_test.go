package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// Objects written by the release before lastAttempt, lastRevocation and backoffs keep
// their meaning, so the upgrade repeats no Kommo call.
func TestAdoptLegacyStatus(t *testing.T) {
	received := metav1.NewMicroTime(time.Date(2026, 11, 30, 10, 0, 0, 123000, time.UTC))
	legacy := func(reason string) *installationScope {
		inst := &kommov1.KommoInstallation{}
		inst.Generation = 3
		inst.Spec.Authorization = &kommov1.Authorization{ReceivedAt: received}
		inst.Spec.Revocation = &kommov1.Revocation{ReceivedAt: metav1.NewMicroTime(received.Add(time.Hour))}
		inst.Status.Conditions = []metav1.Condition{{Type: kommov1.ConditionAuthorized, Status: metav1.ConditionFalse,
			Reason: reason, Message: "as the old release said", ObservedGeneration: 3}}
		return newScope(inst, time.Now())
	}

	s := legacy(kommov1.ReasonInvalidCode)
	adoptLegacyStatus(s)
	if a := s.inst.Status.LastAttempt; a == nil || a.Result != kommov1.OutcomeFailed || !a.ReceivedAt.Equal(&received) {
		t.Errorf("a legacy failed install is not a failed attempt: %+v", a)
	}

	s = legacy(kommov1.ReasonRevoked)
	adoptLegacyStatus(s)
	if r := s.inst.Status.LastRevocation; r == nil || r.Result != kommov1.OutcomeRevoked {
		t.Errorf("a legacy revocation is not decided: %+v", r)
	}

	s = legacy(kommov1.ReasonReinstallRequired)
	s.tokens = &tokens{RefreshToken: "spent"}
	adoptLegacyStatus(s)
	if left := BackoffLeft(s.inst.Status.Backoffs, concernRefresh, "", time.Now(), 1); left != forever {
		t.Errorf("a legacy revoked refresh token would be sent again (waits %s)", left)
	}

	// New-style status is left alone.
	s = legacy(kommov1.ReasonInvalidCode)
	s.inst.Status.Backoffs = []kommov1.Backoff{{Concern: concernAccount, Reason: kommov1.ReasonKommoUnavailable}}
	adoptLegacyStatus(s)
	if s.inst.Status.LastAttempt != nil {
		t.Error("a status written by this release was reinterpreted")
	}
}
