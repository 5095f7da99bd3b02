package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// maxEvents is how many of the latest events status shows.
const maxEvents = 10

// statusReport is what `status` prints; -o json|yaml prints it as is.
type statusReport struct {
	Namespace      string             `json:"namespace"`
	Name           string             `json:"name"`
	Integration    string             `json:"integration"`
	AccountDomain  string             `json:"accountDomain"`
	Paused         bool               `json:"paused"`
	Generation     int64              `json:"generation"`
	Observed       int64              `json:"observedGeneration"`
	AccountID      int64              `json:"accountID,omitempty"`
	ScopeID        string             `json:"scopeID,omitempty"`
	TokenSecret    string             `json:"tokenSecretName,omitempty"`
	ExpiresAt      *metav1.Time       `json:"accessTokenExpiresAt,omitempty"`
	RefreshTime    *metav1.Time       `json:"refreshTime,omitempty"`
	LastRefresh    *metav1.Time       `json:"lastRefreshTime,omitempty"`
	LastAttempt    *kommov1.Outcome   `json:"lastAttempt,omitempty"`
	LastRevocation *kommov1.Outcome   `json:"lastRevocation,omitempty"`
	Backoffs       []kommov1.Backoff  `json:"backoffs,omitempty"`
	Conditions     []metav1.Condition `json:"conditions,omitempty"`
	Events         []eventSummary     `json:"events,omitempty"`
	Actions        []action           `json:"actions,omitempty"`
}

type eventSummary struct {
	Time   metav1.Time `json:"time"`
	Type   string      `json:"type"`
	Reason string      `json:"reason"`
	Note   string      `json:"note"`
	Count  int32       `json:"count,omitempty"`
}

// action is what to do about one failing condition.
type action struct {
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Do        string `json:"do"`
}

func newStatusCommand(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status INSTALLATION",
		Short: "Show an installation's conditions, tokens, latest install and revocation, backoffs, events and what to do",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			report, err := buildStatus(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
			if err != nil {
				return err
			}
			if ok, err := printData(o.Out, output, report); ok {
				return err
			}
			return printStatus(o.Out, report, o.now())
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func buildStatus(ctx context.Context, c client.Client, key client.ObjectKey) (*statusReport, error) {
	inst := &kommov1.KommoInstallation{}
	if err := c.Get(ctx, key, inst); err != nil {
		return nil, fmt.Errorf("getting KommoInstallation %s: %w", key, err)
	}
	st := inst.Status
	r := &statusReport{
		Namespace: inst.Namespace, Name: inst.Name, Integration: inst.Spec.IntegrationRef.Name,
		AccountDomain: st.AccountDomain, Paused: inst.Annotations[kommov1.AnnotationPaused] == "true",
		Generation: inst.Generation, Observed: st.ObservedGeneration, AccountID: st.AccountID, ScopeID: st.ScopeID,
		TokenSecret: st.TokenSecretName, ExpiresAt: st.AccessTokenExpiresAt, RefreshTime: st.RefreshTime,
		LastRefresh: st.LastRefreshTime, LastAttempt: st.LastAttempt, LastRevocation: st.LastRevocation,
		Backoffs: st.Backoffs, Conditions: st.Conditions,
	}
	if r.AccountDomain == "" {
		r.AccountDomain = inst.Spec.AccountDomain
	}
	for _, cond := range st.Conditions {
		// Ready repeats the reason of the condition that keeps it False: say it once.
		if cond.Status == metav1.ConditionTrue || slices.ContainsFunc(r.Actions, func(a action) bool { return a.Reason == cond.Reason }) {
			continue
		}
		if do, ok := advice[cond.Reason]; ok {
			r.Actions = append(r.Actions, action{Condition: cond.Type, Reason: cond.Reason, Do: do})
		}
	}
	events := &eventsv1.EventList{}
	sel := fields.OneTermEqualSelector("regarding.uid", string(inst.UID))
	if err := c.List(ctx, events, client.InNamespace(inst.Namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing the installation's events: %w", err)
	}
	for _, e := range events.Items {
		t := e.EventTime.Time
		if e.Series != nil {
			t = e.Series.LastObservedTime.Time
		}
		if t.IsZero() {
			t = e.DeprecatedLastTimestamp.Time
		}
		if t.IsZero() {
			t = e.CreationTimestamp.Time
		}
		s := eventSummary{Time: metav1.NewTime(t), Type: e.Type, Reason: e.Reason, Note: e.Note}
		if e.Series != nil {
			s.Count = e.Series.Count
		}
		r.Events = append(r.Events, s)
	}
	slices.SortStableFunc(r.Events, func(a, b eventSummary) int { return a.Time.Compare(b.Time.Time) })
	if len(r.Events) > maxEvents {
		r.Events = r.Events[len(r.Events)-maxEvents:]
	}
	return r, nil
}

func printStatus(w io.Writer, r *statusReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	at := func(t *metav1.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339) + " (" + relative(t.Time, now) + ")"
	}
	outcome := func(o *kommov1.Outcome) string {
		if o == nil {
			return "-"
		}
		s := o.Result
		if o.Reason != "" {
			s += " (" + o.Reason + ")"
		}
		return fmt.Sprintf("%s, received %s, decided %s", s, o.ReceivedAt.UTC().Format(time.RFC3339Nano), at(&o.Time))
	}
	line("Installation", "%s/%s", r.Namespace, r.Name)
	line("Integration", "%s", r.Integration)
	line("Account", "%s", r.AccountDomain)
	if r.AccountID != 0 {
		line("Account ID", "%d", r.AccountID)
	}
	line("Scope ID", "%s", dash(r.ScopeID))
	if r.Paused {
		line("Paused", "yes (kommo-operator.io/paused=true): the controller does nothing")
	}
	if r.Observed < r.Generation {
		line("Generation", "%d, controller has seen %d", r.Generation, r.Observed)
	}
	line("Token Secret", "%s", dash(r.TokenSecret))
	line("Token expires", "%s", at(r.ExpiresAt))
	line("Next refresh", "%s", at(r.RefreshTime))
	line("Last refresh", "%s", at(r.LastRefresh))
	line("Latest install", "%s", outcome(r.LastAttempt))
	line("Latest revocation", "%s", outcome(r.LastRevocation))
	if err := tw.Flush(); err != nil {
		return err
	}

	var rows []string
	for _, b := range r.Backoffs {
		rows = append(rows, fmt.Sprintf("%s\t%d\t%s", b.Concern, b.FailedAttempts, at(&b.LastFailureTime)))
	}
	table(w, "Backoffs", "", "CONCERN\tFAILED ATTEMPTS\tLAST FAILURE", rows)
	rows = nil
	for _, c := range r.Conditions {
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", c.Type, c.Status, c.Reason, relative(c.LastTransitionTime.Time, now), c.Message))
	}
	table(w, "Conditions", "none yet: the controller has not looked at it", "TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE", rows)
	rows = nil
	for _, e := range r.Events {
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", relative(e.Time.Time, now), e.Type, e.Reason, e.Note))
	}
	table(w, "Events", "none", "LAST SEEN\tTYPE\tREASON\tMESSAGE", rows)
	if len(r.Actions) > 0 {
		fmt.Fprintln(w, "\nWhat to do:")
		for _, a := range r.Actions {
			fmt.Fprintf(w, "  %s %s: %s\n", a.Condition, a.Reason, a.Do)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table writes the section title with header and the tab-separated rows aligned under it;
// with no rows, the line none instead (or no section at all when none is "").
func table(w io.Writer, title, none, header string, rows []string) {
	if len(rows) == 0 && none == "" {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	if len(rows) == 0 {
		fmt.Fprintln(w, "  "+none)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+header)
	for _, row := range rows {
		fmt.Fprintln(tw, "  "+row)
	}
	_ = tw.Flush()
}
