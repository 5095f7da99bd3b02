package controllers

import (
	"context"
	"strings"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

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
