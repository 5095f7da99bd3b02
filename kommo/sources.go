package kommo

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Kommo's Sources API (developers.kommo.com "Sources"; amocrm.ru "API источников"):
//
//   - GET /api/v4/sources[?filter[external_id]=…] lists the sources of the integration
//     whose token is used, in that account: 200 with _embedded.sources, or 204 with no
//     body when there are none or the filter matched nothing. No paging (at most 100).
//   - POST /api/v4/sources takes a JSON array of at most 50 sources; name and external_id
//     are required, pipeline_id defaults to the main pipeline, origin_code (if sent) is at
//     most 20 characters, not all digits and not only quotes.
//   - PATCH /api/v4/sources takes an array of sources with their id; external_id cannot be
//     changed; a source without pipeline_id may be moved to the main pipeline, so updates
//     always send it.
//   - DELETE /api/v4/sources takes [{"id":…}] and answers 204.
//   - Responses carry request_id per item ("0", "1", … in request order); a 400 lists the
//     refused items by request_id with an error code, a path and a localized detail.
//
// Pipelines: GET /api/v4/leads/pipelines → _embedded.pipelines[] with id, name, is_main,
// is_unsorted_on and is_archive; at most 50 per account, no paging.

// MaxSourcesPerRequest is the most sources Kommo takes in one POST or PATCH.
const MaxSourcesPerRequest = 50

// Source is a Kommo lead source as Kommo reports it.
type Source struct {
	ID         int64
	Name       string
	PipelineID int64
	ExternalID string
	Default    bool
	OriginCode string
}

// NewSource is a source to create. PipelineID 0 lets Kommo use the main pipeline;
// OriginCode "" sends none.
type NewSource struct {
	Name       string
	ExternalID string
	PipelineID int64
	Default    bool
	OriginCode string
}

// SourceUpdate is the new state of an existing source. ExternalID is not sent (Kommo
// refuses to change it); it names the source in errors. PipelineID must be set: Kommo
// may move a source updated without one to the main pipeline. OriginCode "" leaves it.
type SourceUpdate struct {
	ID         int64
	ExternalID string
	Name       string
	PipelineID int64
	Default    bool
	OriginCode string
}

// SourceRef names a source to delete; ExternalID only names it in errors.
type SourceRef struct {
	ID         int64
	ExternalID string
}

// Pipeline is a lead pipeline of the account.
type Pipeline struct {
	ID         int64
	Name       string
	IsMain     bool
	IsUnsorted bool // incoming leads are enabled
	IsArchive  bool
}

// ItemError is one item of a batch request that Kommo refused. It carries only what
// is safe to show: the item's position and external id (the caller's own identifiers),
// Kommo's error code when it looks like one, and the field Kommo named when it is one of
// the request's own fields. Kommo's detail text is never kept: it may echo the value.
type ItemError struct {
	Index      int    // position in the caller's list (not per request)
	ExternalID string // the item's external id, when the call knows it
	ID         int64  // the item's Kommo id, for updates and deletes
	Code       string // Kommo's error code, e.g. "NotSupportedChoice"; "" when none was safe to keep
	Field      string // e.g. "origin_code"; "" when unknown
}

// Reason is Kommo's code, or a fixed phrase when there is none.
func (ie ItemError) Reason() string {
	if ie.Code != "" {
		return ie.Code
	}
	return "rejected"
}

// ItemErrorsOf returns the refused items of a batch call's error, or nil.
func ItemErrorsOf(err error) []ItemError {
	var e *Error
	if asError(err, &e) {
		return e.Items
	}
	return nil
}

type sourceJSON struct {
	ID         flexInt `json:"id"`
	Name       string  `json:"name"`
	PipelineID flexInt `json:"pipeline_id"`
	ExternalID string  `json:"external_id"`
	Default    *bool   `json:"default"` // Kommo may send null
	OriginCode string  `json:"origin_code"`
}

type sourcesResponse struct {
	Embedded struct {
		Sources []sourceJSON `json:"sources"`
	} `json:"_embedded"`
}

func (s sourceJSON) source() Source {
	return Source{ID: int64(s.ID), Name: s.Name, PipelineID: int64(s.PipelineID), ExternalID: s.ExternalID,
		Default: s.Default != nil && *s.Default, OriginCode: s.OriginCode}
}

type newSourceJSON struct {
	Name       string `json:"name"`
	ExternalID string `json:"external_id"`
	PipelineID int64  `json:"pipeline_id,omitempty"`
	Default    bool   `json:"default"`
	OriginCode string `json:"origin_code,omitempty"`
}

type sourceUpdateJSON struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PipelineID int64  `json:"pipeline_id"`
	Default    bool   `json:"default"`
	OriginCode string `json:"origin_code,omitempty"`
}

type sourceRefJSON struct {
	ID int64 `json:"id"`
}

// ListSources lists the integration's sources in the account at
// GET https://{accountHost}/api/v4/sources, optionally only those with the given
// external ids. None is an empty list, not an error.
func (c *Client) ListSources(ctx context.Context, accountHost, accessToken string, externalIDs ...string) ([]Source, error) {
	path := "/api/v4/sources"
	if len(externalIDs) > 0 {
		q := url.Values{"filter[external_id][]": externalIDs}
		path += "?" + q.Encode()
	}
	data, err := c.bearer(ctx, opListSources, accountHost, accessToken, http.MethodGet, path, nil, false)
	if err != nil || len(data) == 0 {
		return nil, err
	}
	var r sourcesResponse
	if err := decode(opListSources, accountHost, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	out := make([]Source, 0, len(r.Embedded.Sources))
	for _, s := range r.Embedded.Sources {
		if s.ID <= 0 {
			return nil, malformed(opListSources, accountHost, http.StatusOK)
		}
		out = append(out, s.source())
	}
	return out, nil
}

// CreateSources creates sources with POST https://{accountHost}/api/v4/sources, at most
// MaxSourcesPerRequest per request. It returns the sources Kommo created, also when a
// later request fails; a refusal of some items is an *Error whose Items name them by
// ExternalID and Index. Kommo validates a request as a whole: when it refuses an item,
// nothing of that request is created.
func (c *Client) CreateSources(ctx context.Context, accountHost, accessToken string, sources []NewSource) ([]Source, error) {
	var out []Source
	err := inBatches(sources, func(start int, chunk []NewSource) error {
		body := make([]newSourceJSON, len(chunk))
		for i, s := range chunk {
			body[i] = newSourceJSON{Name: s.Name, ExternalID: s.ExternalID, PipelineID: s.PipelineID, Default: s.Default, OriginCode: s.OriginCode}
		}
		got, err := c.sourcesBatch(ctx, opCreateSources, accountHost, accessToken, http.MethodPost, jsonBody(body), func(e *ItemError) {
			e.ExternalID = chunk[e.Index].ExternalID
			e.Index += start
		}, len(chunk))
		out = append(out, got...)
		return err
	})
	return out, err
}

// UpdateSources updates sources with PATCH https://{accountHost}/api/v4/sources, at most
// MaxSourcesPerRequest per request, and returns them as Kommo now has them.
func (c *Client) UpdateSources(ctx context.Context, accountHost, accessToken string, updates []SourceUpdate) ([]Source, error) {
	var out []Source
	err := inBatches(updates, func(start int, chunk []SourceUpdate) error {
		body := make([]sourceUpdateJSON, len(chunk))
		for i, u := range chunk {
			if u.ID <= 0 || u.PipelineID <= 0 {
				return &Error{Op: opUpdateSources, Host: safeHost(accountHost), Kind: KindBadRequest, cause: "update without id or pipeline id"}
			}
			body[i] = sourceUpdateJSON{ID: u.ID, Name: u.Name, PipelineID: u.PipelineID, Default: u.Default, OriginCode: u.OriginCode}
		}
		got, err := c.sourcesBatch(ctx, opUpdateSources, accountHost, accessToken, http.MethodPatch, jsonBody(body), func(e *ItemError) {
			e.ExternalID, e.ID = chunk[e.Index].ExternalID, chunk[e.Index].ID
			e.Index += start
		}, len(chunk))
		out = append(out, got...)
		return err
	})
	return out, err
}

// DeleteSources deletes sources with DELETE https://{accountHost}/api/v4/sources, at
// most MaxSourcesPerRequest per request. Kommo refuses the whole request when one id is
// unknown (code "EntityNotFound" in Items).
func (c *Client) DeleteSources(ctx context.Context, accountHost, accessToken string, refs []SourceRef) error {
	return inBatches(refs, func(start int, chunk []SourceRef) error {
		body := make([]sourceRefJSON, len(chunk))
		for i, r := range chunk {
			body[i] = sourceRefJSON{ID: r.ID}
		}
		_, err := c.sourcesBatch(ctx, opDeleteSources, accountHost, accessToken, http.MethodDelete, jsonBody(body), func(e *ItemError) {
			e.ExternalID, e.ID = chunk[e.Index].ExternalID, chunk[e.Index].ID
			e.Index += start
		}, len(chunk))
		return err
	})
}

// inBatches calls send with consecutive chunks of items, at most MaxSourcesPerRequest
// each, and the index of each chunk's first item; it stops at the first error.
func inBatches[T any](items []T, send func(start int, chunk []T) error) error {
	for start := 0; start < len(items); start += MaxSourcesPerRequest {
		if err := send(start, items[start:min(start+MaxSourcesPerRequest, len(items))]); err != nil {
			return err
		}
	}
	return nil
}

type pipelinesResponse struct {
	Embedded struct {
		Pipelines []struct {
			ID           flexInt `json:"id"`
			Name         string  `json:"name"`
			IsMain       bool    `json:"is_main"`
			IsUnsortedOn bool    `json:"is_unsorted_on"`
			IsArchive    bool    `json:"is_archive"`
		} `json:"pipelines"`
	} `json:"_embedded"`
}

// Pipelines lists the account's lead pipelines at GET https://{accountHost}/api/v4/leads/pipelines.
func (c *Client) Pipelines(ctx context.Context, accountHost, accessToken string) ([]Pipeline, error) {
	data, err := c.bearer(ctx, opPipelines, accountHost, accessToken, http.MethodGet, "/api/v4/leads/pipelines", nil, false)
	if err != nil || len(data) == 0 {
		return nil, err
	}
	var r pipelinesResponse
	if err := decode(opPipelines, accountHost, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	out := make([]Pipeline, 0, len(r.Embedded.Pipelines))
	for _, p := range r.Embedded.Pipelines {
		if p.ID <= 0 {
			return nil, malformed(opPipelines, accountHost, http.StatusOK)
		}
		out = append(out, Pipeline{ID: int64(p.ID), Name: p.Name, IsMain: p.IsMain, IsUnsorted: p.IsUnsortedOn, IsArchive: p.IsArchive})
	}
	return out, nil
}

// sourcesBatch sends one batch request; name maps an item error's request-relative
// index to the caller's item.
func (c *Client) sourcesBatch(ctx context.Context, op, host, token, method string, body []byte, name func(*ItemError), n int) ([]Source, error) {
	data, err := c.bearer(ctx, op, host, token, method, "/api/v4/sources", body, true)
	if err != nil {
		var e *Error
		if asError(err, &e) {
			items := e.Items[:0]
			for _, ie := range e.Items {
				if ie.Index >= 0 && ie.Index < n {
					name(&ie)
					items = append(items, ie)
				}
			}
			e.Items = items
		}
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil
	}
	var r sourcesResponse
	if err := decode(op, host, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	out := make([]Source, 0, len(r.Embedded.Sources))
	for _, s := range r.Embedded.Sources {
		out = append(out, s.source())
	}
	return out, nil
}

// bearer sends one account API request with the access token.
func (c *Client) bearer(ctx context.Context, op, host, token, method, path string, body []byte, items bool) ([]byte, error) {
	if token == "" {
		return nil, &Error{Op: op, Host: safeHost(host), Kind: KindBadRequest, cause: "missing credentials"}
	}
	h := http.Header{"Authorization": {"Bearer " + token}}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return c.do(ctx, call{api: apiAccount, op: op, host: host, method: method, path: path, header: h, body: body, items: items})
}

// Kommo error codes are identifiers such as NotSupportedChoice or EntityNotFound.
var itemCodeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// The fields of a source request: the only paths an ItemError reports.
var sourceFields = map[string]bool{"id": true, "name": true, "external_id": true, "pipeline_id": true, "default": true, "origin_code": true, "services": true}

// parseItemErrors reads the refused items of a 400 body. Kommo has sent both
// {"validation-errors":[{"request_id":"0","errors":[{"code","path","detail"}]}]} and
// {"errors":[{"request_id":"0","errors":{"code","path","detail"}}]}. One ItemError per
// refused item (its first error); anything unreadable yields none.
func parseItemErrors(body []byte) []ItemError {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	raw := top["validation-errors"]
	if raw == nil {
		raw = top["errors"]
	}
	var entries []struct {
		RequestID json.RawMessage `json:"request_id"`
		Errors    json.RawMessage `json:"errors"`
	}
	if raw == nil || json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	type detail struct {
		Code json.RawMessage `json:"code"`
		Path string          `json:"path"`
	}
	var out []ItemError
	seen := map[int]bool{}
	for _, en := range entries {
		idx, err := strconv.Atoi(strings.Trim(string(en.RequestID), `"`))
		if err != nil || idx < 0 || seen[idx] {
			continue
		}
		var ds []detail
		if json.Unmarshal(en.Errors, &ds) != nil {
			var d detail
			if json.Unmarshal(en.Errors, &d) != nil {
				continue
			}
			ds = []detail{d}
		}
		ie := ItemError{Index: idx}
		if len(ds) > 0 {
			if code := strings.Trim(string(ds[0].Code), `"`); itemCodeRE.MatchString(code) {
				ie.Code = code
			}
			for _, seg := range strings.Split(ds[0].Path, ".") {
				if sourceFields[seg] {
					ie.Field = seg
					break
				}
			}
		}
		seen[idx] = true
		out = append(out, ie)
	}
	return out
}
