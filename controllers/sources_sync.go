package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// SourcesAPI is what the sources sync needs of Kommo; *kommo.Client implements it.
type SourcesAPI interface {
	ListSources(ctx context.Context, accountHost, accessToken string, externalIDs ...string) ([]kommo.Source, error)
	CreateSources(ctx context.Context, accountHost, accessToken string, sources []kommo.NewSource) ([]kommo.Source, error)
	UpdateSources(ctx context.Context, accountHost, accessToken string, updates []kommo.SourceUpdate) ([]kommo.Source, error)
	DeleteSources(ctx context.Context, accountHost, accessToken string, refs []kommo.SourceRef) error
	Pipelines(ctx context.Context, accountHost, accessToken string) ([]kommo.Pipeline, error)
}

var _ SourcesAPI = (*kommo.Client)(nil)

// DefaultSourceLimit is how many sources Kommo allows one integration in one account.
const DefaultSourceLimit = 100

// SourcesSyncInput is everything the sources sync of one installation looks at.
type SourcesSyncInput struct {
	Host        string                 // the account host (status.accountDomain)
	AccessToken string                 // a valid access token of the installation
	Template    []kommov1.Source       // the KommoIntegration's spec.sources
	Declared    []kommov1.Source       // the KommoInstallation's spec.sources; they win on the same externalID
	Previous    []kommov1.SourceStatus // status.sources as the last sync left it
	OriginCode  string                 // the default originCode: the KommoIntegration's spec.chat.code
	WidgetCode  string                 // the KommoIntegration's spec.widgetCode
	Limit       int                    // sources Kommo allows; 0 means DefaultSourceLimit
}

// SourcesSyncResult is what one sync did and found.
type SourcesSyncResult struct {
	// Sources is the new status.sources. On a failed call it still records everything
	// known: what was created before the failure, and the previous entries otherwise.
	Sources []kommov1.SourceStatus
	// Condition is the SourcesSynced condition (Type, Status, Reason, Message); set it with
	// meta.SetStatusCondition. Its Type is empty when nothing is declared and nothing is
	// managed: no call was made, and the condition should be removed.
	Condition metav1.Condition
	// Calls counts the client calls made by kind.
	Calls SourcesCalls
	// Err is a failed call (429, 5xx, timeout, 401, block): back off and retry. Item
	// refusals, unknown or archived pipelines and the limit are not errors: they are in
	// Condition, and only a change of the declarations (or of Kommo) helps.
	Err error
}

// SourcesCalls counts what the sync asked of Kommo: client calls, and items written.
type SourcesCalls struct {
	List, Pipelines, Create, Update, Delete int
	Created, Updated, Deleted, Adopted      int
}

// desiredSource is one merged declaration with its effective origin code.
type desiredSource struct {
	kommov1.Source
	key string // lowercased externalID
}

// sourceProblem is why one declared or managed source is not as declared.
type sourceProblem struct {
	reason, externalID, detail string
}

// SyncSources makes the installation's Kommo sources match the declarations: the
// integration's template merged with the installation's own (the installation wins on
// the same externalID, compared ignoring case; a default there overrides one in the
// template). It lists the integration's sources once, adopts a listed source whose
// externalID is declared, creates what is missing and patches what drifted (in batches),
// and deletes only sources it created (Ownership Created in Previous) that are no longer
// declared; adopted ones are only forgotten. It never touches a source it does not know,
// nor the one Kommo creates itself with the widget code. Pipelines are read only when a
// declaration names a pipeline by name or id (or the main one) that the previous sync
// did not resolve, so a resync without drift costs one GET. A source Kommo refuses, or
// whose pipeline is unknown or archived, is reported by externalID while the others
// sync.
func SyncSources(ctx context.Context, api SourcesAPI, in SourcesSyncInput) SourcesSyncResult {
	s := &sourcesSync{api: api, in: in, limit: in.Limit}
	if s.limit <= 0 {
		s.limit = DefaultSourceLimit
	}
	return s.run(ctx)
}

type sourcesSync struct {
	api      SourcesAPI
	in       SourcesSyncInput
	limit    int
	calls    SourcesCalls
	problems []sourceProblem

	listed []kommo.Source
	byKey  map[string]kommo.Source // Kommo's sources by lowercased external id

	// state is status.sources being rebuilt, by lowercased externalID, in order.
	state map[string]kommov1.SourceStatus
	order []string

	creates     []desiredSource
	createPlans []kommov1.SourceStatus
	updates     []kommo.SourceUpdate
	updatePlans []kommov1.SourceStatus
	deletes     []kommo.SourceRef

	pipelines   []kommo.Pipeline
	fetched     bool
	fetchFailed error
}

func (s *sourcesSync) run(ctx context.Context) SourcesSyncResult {
	desired := mergeSources(s.in.Template, s.in.Declared, s.in.OriginCode)
	if len(desired) == 0 && len(s.in.Previous) == 0 {
		return SourcesSyncResult{}
	}
	listed, err := s.api.ListSources(ctx, s.in.Host, s.in.AccessToken)
	s.calls.List++
	if err != nil {
		return s.failed(SourcesSyncResult{Sources: s.in.Previous}, err)
	}
	s.listed, s.byKey = listed, map[string]kommo.Source{}
	for _, k := range listed {
		s.byKey[strings.ToLower(k.ExternalID)] = k
	}
	s.carryPrevious()
	if err := s.plan(ctx, desired); err != nil {
		return s.failed(s.result(), err)
	}
	if err := s.apply(ctx); err != nil {
		return s.failed(s.result(), err)
	}
	res := s.result()
	res.Condition = s.condition(len(desired))
	return res
}

func (s *sourcesSync) put(st kommov1.SourceStatus) {
	key := strings.ToLower(st.ExternalID)
	if _, ok := s.state[key]; !ok {
		s.order = append(s.order, key)
	}
	s.state[key] = st
}

// carryPrevious starts the new status from the previous one, as far as Kommo still has
// those sources.
func (s *sourcesSync) carryPrevious() {
	s.state = map[string]kommov1.SourceStatus{}
	for _, p := range s.in.Previous {
		k, ok := s.byKey[strings.ToLower(p.ExternalID)]
		switch {
		case !ok: // gone from Kommo: forgotten, and created again if still declared
		case k.ID != p.ID: // replaced by someone else: not the operator's to delete
			p.ID, p.PipelineID, p.Ownership = k.ID, k.PipelineID, kommov1.SourceAdopted
			p.PipelineName, p.MainPipeline = "", false
			s.put(p)
		default:
			s.put(p)
		}
	}
}

// plan decides what to create, patch and delete. Only a failure to read the pipelines
// is returned; problems with single sources are recorded and those sources skipped.
func (s *sourcesSync) plan(ctx context.Context, desired []desiredSource) error {
	wanted := map[string]bool{}
	for _, d := range desired {
		wanted[d.key] = true
		if s.in.WidgetCode != "" && strings.EqualFold(d.ExternalID, s.in.WidgetCode) {
			s.problem(kommov1.ReasonSourceRejected, d.ExternalID, "is the widget code: Kommo owns that source")
			continue
		}
		prev, hasPrev := s.state[d.key]
		k, exists := s.byKey[d.key]
		plan, ok := s.resolvePipeline(ctx, d, prev, hasPrev, exists)
		if s.fetchFailed != nil {
			return s.fetchFailed
		}
		if !ok {
			continue
		}
		switch {
		case !exists:
			plan.Ownership = kommov1.SourceCreated
			s.creates, s.createPlans = append(s.creates, d), append(s.createPlans, plan)
			continue
		case hasPrev:
			plan.Ownership = prev.Ownership
		default:
			plan.Ownership = kommov1.SourceAdopted
			s.calls.Adopted++
			// Recorded at once: adopted even if the patch below fails.
			s.put(kommov1.SourceStatus{ExternalID: d.ExternalID, ID: k.ID, PipelineID: k.PipelineID, Ownership: kommov1.SourceAdopted})
		}
		plan.ID = k.ID
		if drifted(k, d, plan.PipelineID) {
			s.updates = append(s.updates, kommo.SourceUpdate{ID: k.ID, ExternalID: d.ExternalID, Name: d.Name,
				PipelineID: plan.PipelineID, Default: d.Default, OriginCode: d.OriginCode})
			s.updatePlans = append(s.updatePlans, plan)
			continue
		}
		plan.PipelineID = k.PipelineID
		s.put(plan)
	}
	for _, key := range s.order {
		st := s.state[key]
		switch {
		case wanted[key]:
		case st.Ownership == kommov1.SourceCreated:
			s.deletes = append(s.deletes, kommo.SourceRef{ID: st.ID, ExternalID: st.ExternalID})
		default:
			delete(s.state, key) // adopted: forgotten, left in Kommo
		}
	}
	return nil
}

// apply deletes first (freeing room under the limit), then patches, then creates.
func (s *sourcesSync) apply(ctx context.Context) error {
	if len(s.deletes) > 0 {
		gone, err := s.deleteSources(ctx, s.deletes)
		for _, ref := range gone {
			delete(s.state, strings.ToLower(ref.ExternalID))
		}
		if err != nil {
			return err
		}
	}
	if len(s.updates) > 0 {
		done, err := s.updateSources(ctx, s.updates)
		for i, u := range s.updates {
			if k, ok := done[u.ID]; ok {
				plan := s.updatePlans[i]
				plan.PipelineID = k.PipelineID
				s.put(plan)
			}
		}
		if err != nil {
			return err
		}
	}
	// Kommo counts every source of the integration, known to the operator or not.
	room := max(s.limit-(len(s.listed)-len(s.deletes)), 0)
	if len(s.creates) > room {
		for _, d := range s.creates[room:] {
			s.problem(kommov1.ReasonSourceLimitReached, d.ExternalID, fmt.Sprintf("is over Kommo's limit of %d sources per integration in an account", s.limit))
		}
		s.creates, s.createPlans = s.creates[:room], s.createPlans[:room]
	}
	if len(s.creates) == 0 {
		return nil
	}
	made, err := s.createSources(ctx, s.creates, s.createPlans)
	for i, d := range s.creates {
		if k, ok := made[d.key]; ok {
			plan := s.createPlans[i]
			plan.ID, plan.PipelineID = k.ID, k.PipelineID
			s.put(plan)
		}
	}
	return err
}

// resolvePipeline works out the pipeline a declaration wants, reading the account's
// pipelines only when the previous sync did not already resolve the same declaration.
// ok is false when the source must be skipped (a problem is recorded), or when the
// pipelines could not be read (fetchFailed is set).
func (s *sourcesSync) resolvePipeline(ctx context.Context, d desiredSource, prev kommov1.SourceStatus, hasPrev, exists bool) (kommov1.SourceStatus, bool) {
	plan := kommov1.SourceStatus{ExternalID: d.ExternalID, PipelineName: d.PipelineName}
	switch {
	case d.PipelineID != 0:
		plan.PipelineID = d.PipelineID
		if hasPrev && prev.PipelineID == d.PipelineID && prev.PipelineName == "" && !prev.MainPipeline {
			return plan, true
		}
		p, ok := s.pipeline(ctx, func(p kommo.Pipeline) bool { return p.ID == d.PipelineID })
		if !ok {
			return plan, false
		}
		return plan, s.usable(d, p, "pipeline "+strconv.FormatInt(d.PipelineID, 10))
	case d.PipelineName != "":
		if hasPrev && prev.PipelineName == d.PipelineName && prev.PipelineID != 0 {
			plan.PipelineID = prev.PipelineID
			return plan, true
		}
		p, ok := s.pipeline(ctx, func(p kommo.Pipeline) bool { return p.Name == d.PipelineName })
		if !ok {
			return plan, false
		}
		plan.PipelineID = p.ID
		return plan, s.usable(d, p, "pipeline "+strconv.Quote(d.PipelineName))
	default:
		plan.MainPipeline = true
		if hasPrev && prev.MainPipeline && prev.PipelineID != 0 {
			plan.PipelineID = prev.PipelineID
			return plan, true
		}
		if !exists {
			return plan, true // created without pipeline_id: Kommo puts it in the main pipeline
		}
		p, ok := s.pipeline(ctx, func(p kommo.Pipeline) bool { return p.IsMain })
		if !ok {
			return plan, false
		}
		plan.PipelineID = p.ID
		return plan, true
	}
}

// usable records a problem when the pipeline is missing (ID 0) or archived.
func (s *sourcesSync) usable(d desiredSource, p kommo.Pipeline, what string) bool {
	switch {
	case p.ID == 0:
		s.problem(kommov1.ReasonPipelineNotFound, d.ExternalID, "names "+what+", which the account does not have")
		return false
	case p.IsArchive:
		s.problem(kommov1.ReasonPipelineArchived, d.ExternalID, "names "+what+", which is archived")
		return false
	}
	return true
}

// pipeline finds the first pipeline matching, preferring one that is not archived; a
// zero Pipeline when none matches. ok is false only when the pipelines could not be read.
func (s *sourcesSync) pipeline(ctx context.Context, match func(kommo.Pipeline) bool) (kommo.Pipeline, bool) {
	if !s.fetched {
		ps, err := s.api.Pipelines(ctx, s.in.Host, s.in.AccessToken)
		s.calls.Pipelines++
		if err != nil {
			s.fetchFailed = err
			return kommo.Pipeline{}, false
		}
		s.pipelines, s.fetched = ps, true
	}
	var found kommo.Pipeline
	for _, p := range s.pipelines {
		if match(p) {
			if !p.IsArchive {
				return p, true
			}
			if found.ID == 0 {
				found = p
			}
		}
	}
	return found, true
}

// drifted tells whether Kommo's source differs from the declaration in what the operator
// manages. An empty origin code is not managed: Kommo cannot unset one.
func drifted(k kommo.Source, d desiredSource, pipelineID int64) bool {
	return k.Name != d.Name || k.Default != d.Default ||
		(pipelineID != 0 && k.PipelineID != pipelineID) ||
		(d.OriginCode != "" && k.OriginCode != d.OriginCode)
}

// createSources creates in batches; a request Kommo refuses for some items is sent again
// once without them. It returns what Kommo created, by lowercased externalID.
// A plan's PipelineID 0 lets Kommo use the main pipeline.
func (s *sourcesSync) createSources(ctx context.Context, ds []desiredSource, plans []kommov1.SourceStatus) (map[string]kommo.Source, error) {
	made := map[string]kommo.Source{}
	in := make([]kommo.NewSource, len(ds))
	for i, d := range ds {
		in[i] = kommo.NewSource{Name: d.Name, ExternalID: d.ExternalID, PipelineID: plans[i].PipelineID, Default: d.Default, OriginCode: d.OriginCode}
	}
	err := sendItems(s, in, func(n kommo.NewSource) string { return n.ExternalID }, func(batch []kommo.NewSource) error {
		s.calls.Create++
		got, err := s.api.CreateSources(ctx, s.in.Host, s.in.AccessToken, batch)
		for _, k := range got {
			made[strings.ToLower(k.ExternalID)] = k
		}
		s.calls.Created += len(got)
		return err
	})
	return made, err
}

func (s *sourcesSync) updateSources(ctx context.Context, us []kommo.SourceUpdate) (map[int64]kommo.Source, error) {
	done := map[int64]kommo.Source{}
	err := sendItems(s, us, func(u kommo.SourceUpdate) string { return u.ExternalID }, func(batch []kommo.SourceUpdate) error {
		s.calls.Update++
		got, err := s.api.UpdateSources(ctx, s.in.Host, s.in.AccessToken, batch)
		for _, k := range got {
			done[k.ID] = k
		}
		s.calls.Updated += len(got)
		return err
	})
	return done, err
}

// deleteSources returns the sources that are gone: deleted, or already missing.
func (s *sourcesSync) deleteSources(ctx context.Context, refs []kommo.SourceRef) ([]kommo.SourceRef, error) {
	var gone []kommo.SourceRef
	rest := refs
	for attempt := 0; attempt < 2 && len(rest) > 0; attempt++ {
		s.calls.Delete++
		err := s.api.DeleteSources(ctx, s.in.Host, s.in.AccessToken, rest)
		if err == nil {
			s.calls.Deleted += len(rest)
			return append(gone, rest...), nil
		}
		items := kommo.ItemErrorsOf(err)
		if len(items) == 0 {
			return gone, err
		}
		refused := map[int]bool{}
		for _, ie := range items {
			refused[ie.Index] = true
			if ie.Code == "EntityNotFound" {
				gone = append(gone, rest[ie.Index])
			} else {
				s.problem(kommov1.ReasonSourceRejected, ie.ExternalID, refusal(ie))
			}
		}
		first := firstRefused(items)
		gone = append(gone, rest[:first]...)
		var next []kommo.SourceRef
		for i := first; i < len(rest); i++ {
			if !refused[i] {
				next = append(next, rest[i])
			}
		}
		rest = next
	}
	return gone, nil
}

// sendItems sends items; when Kommo refuses some of them (a 400 naming them), they are
// reported and the rest sent once more. Any other failure is returned.
func sendItems[T any](s *sourcesSync, items []T, externalID func(T) string, send func([]T) error) error {
	for attempt := 0; attempt < 2 && len(items) > 0; attempt++ {
		err := send(items)
		if err == nil {
			return nil
		}
		refused := kommo.ItemErrorsOf(err)
		if len(refused) == 0 {
			return err
		}
		skip := map[int]bool{}
		for _, ie := range refused {
			skip[ie.Index] = true
			s.problem(kommov1.ReasonSourceRejected, externalID(items[ie.Index]), refusal(ie))
		}
		var next []T
		for i := firstRefused(refused); i < len(items); i++ {
			if !skip[i] {
				next = append(next, items[i])
			}
		}
		items = next
	}
	return nil
}

// firstRefused is where the request holding the first refused item started: the client
// sends at most MaxSourcesPerRequest items per request and stops at the one refused, so
// the items before it were written already.
func firstRefused(items []kommo.ItemError) int {
	first := items[0].Index
	for _, ie := range items {
		first = min(first, ie.Index)
	}
	return first - first%kommo.MaxSourcesPerRequest
}

func refusal(ie kommo.ItemError) string {
	msg := "was refused by Kommo (" + ie.Reason()
	if ie.Field != "" {
		msg += " at " + ie.Field
	}
	return msg + ")"
}

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

// mergeSources merges the integration's template with the installation's declarations
// (the installation wins on the same externalID, ignoring case; a default among its own
// overrides the template's) and applies the default origin code.
func mergeSources(template, own []kommov1.Source, originCode string) []desiredSource {
	ownDefault := false
	for _, o := range own {
		ownDefault = ownDefault || o.Default
	}
	var out []desiredSource
	index := map[string]int{}
	add := func(src kommov1.Source, fromTemplate bool) {
		if fromTemplate && ownDefault {
			src.Default = false
		}
		if src.OriginCode == "" {
			src.OriginCode = originCode
		}
		key := strings.ToLower(src.ExternalID)
		if i, ok := index[key]; ok {
			out[i] = desiredSource{Source: src, key: key}
			return
		}
		index[key] = len(out)
		out = append(out, desiredSource{Source: src, key: key})
	}
	for _, t := range template {
		add(t, true)
	}
	for _, o := range own {
		add(o, false)
	}
	return out
}
