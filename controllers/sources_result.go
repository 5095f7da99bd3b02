package controllers

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

func (s *sourcesSync) problem(reason, externalID, detail string) {
	s.problems = append(s.problems, sourceProblem{reason: reason, externalID: externalID, detail: detail})
}

// result holds the rebuilt status, in a stable order.
func (s *sourcesSync) result() SourcesSyncResult {
	res := SourcesSyncResult{Calls: s.calls}
	for _, key := range s.order {
		if st, ok := s.state[key]; ok {
			res.Sources = append(res.Sources, st)
		}
	}
	return res
}

func (s *sourcesSync) failed(res SourcesSyncResult, err error) SourcesSyncResult {
	res.Calls = s.calls
	res.Err = err
	res.Condition = metav1.Condition{Type: kommov1.ConditionSourcesSynced, Status: metav1.ConditionFalse,
		Reason: sourcesFailureReason(err), Message: "Syncing sources failed: " + err.Error()}
	if len(s.problems) > 0 {
		res.Condition.Message += "; " + s.problemText()
	}
	return res
}

func (s *sourcesSync) condition(declared int) metav1.Condition {
	c := metav1.Condition{Type: kommov1.ConditionSourcesSynced}
	if len(s.problems) == 0 {
		c.Status, c.Reason = metav1.ConditionTrue, kommov1.ReasonSynced
		c.Message = fmt.Sprintf("%d declared sources are in Kommo as declared", declared)
		return c
	}
	c.Status, c.Reason = metav1.ConditionFalse, s.problems[0].reason
	c.Message = s.problemText()
	return c
}

// maxProblemsShown bounds the condition message.
const maxProblemsShown = 5

func (s *sourcesSync) problemText() string {
	var parts []string
	for i, p := range s.problems {
		if i == maxProblemsShown {
			parts = append(parts, fmt.Sprintf("and %d more", len(s.problems)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("source %q %s", p.externalID, p.detail))
	}
	return strings.Join(parts, "; ")
}

// sourcesFailureReason maps a failed call to a condition reason.
func sourcesFailureReason(err error) string {
	switch kommo.KindOf(err) {
	case kommo.KindRateLimited:
		return kommov1.ReasonRateLimited
	case kommo.KindBlocked:
		return kommov1.ReasonBlocked
	case kommo.KindTransient, "":
		return kommov1.ReasonKommoUnavailable
	}
	return kommov1.ReasonKommoRejected
}
