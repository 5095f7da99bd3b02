package controllers

import (
	"context"
	"fmt"
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
