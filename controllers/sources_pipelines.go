package controllers

import (
	"context"
	"strconv"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

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
