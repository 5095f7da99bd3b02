package kommotest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Kommo's Sources and pipelines APIs, per account and per integration, as documented
// (KOMMO_API.md "Sources"):
//   - sources belong to the integration whose token is used and to the account; GET lists
//     only those, 204 with no body when there are none or a filter matches nothing;
//   - POST, PATCH and DELETE take arrays (POST and PATCH at most 50 items) and are
//     validated as a whole: one refused item refuses the request, with 400 and a
//     per-item error list keyed by request_id (the item's position);
//   - external_id is required, at most 36 printable ASCII characters, unique per
//     integration and account ignoring case, stored lowercased (Kommo may lowercase it)
//     and immutable; name is required; pipeline_id must be a pipeline of the account
//     (archived ones are accepted, as documented), missing means the main pipeline, on
//     PATCH too; origin_code is at most 20 characters, not all digits, not only quotes;
//   - at most one default: setting one unsets the integration's previous default;
//   - at most Options.SourceLimit (default 100) sources per integration per account;
//   - without the integration's "multiple sources" setting (SetWidget), Kommo creates one
//     source itself at install, its external_id the widget code.
// The error codes below are Kommo-style (Symfony validator names); clients must treat
// them as opaque.

// Source is a simulated Kommo source.
type Source struct {
	ID         int64
	Name       string
	PipelineID int64
	ExternalID string
	Default    bool
	OriginCode string
}

// Pipeline is a simulated lead pipeline.
type Pipeline struct {
	ID        int64
	Name      string
	IsMain    bool
	IsArchive bool
}

type storedSource struct {
	Source
	clientID string
}

const (
	defaultSourceLimit   = 100
	maxSourcesPerRequest = 50
	mainPipelineName     = "Main pipeline"
)

// SetWidget gives an integration a widget code and its "multiple sources" setting.
// Without multiple sources, every install (code exchange) of the integration makes Kommo
// create one source whose external_id is the widget code, if the account has none.
func (s *Simulator) SetWidget(clientID, widgetCode string, multipleSources bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.integrations[clientID]; in != nil {
		in.widgetCode, in.multipleSources = widgetCode, multipleSources
	}
}

// AddPipeline adds a pipeline to the account at host and returns its id; 0 when there is
// no such account.
func (s *Simulator) AddPipeline(host, name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(host)
	if a == nil {
		return 0
	}
	s.nextID++
	a.pipelines = append(a.pipelines, &Pipeline{ID: s.nextID, Name: name})
	return s.nextID
}

// ArchivePipeline archives (or with false restores) a pipeline of the account.
func (s *Simulator) ArchivePipeline(host string, id int64, archived bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accountLocked(host); a != nil {
		if p := a.pipeline(id); p != nil {
			p.IsArchive = archived
		}
	}
}

// MainPipeline returns the id of the account's main pipeline; 0 when there is no account.
func (s *Simulator) MainPipeline(host string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accountLocked(host); a != nil {
		return a.mainPipeline()
	}
	return 0
}

// Sources returns the integration's sources in the account at host, in creation order.
func (s *Simulator) Sources(host, clientID string) []Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[host]
	if a == nil {
		return nil
	}
	var out []Source
	for _, src := range a.sources {
		if src.clientID == clientID {
			out = append(out, src.Source)
		}
	}
	return out
}

// PutSource creates a source for the integration in the account directly, as the
// integration's backend or Kommo's UI would have, and returns its id. The external id is
// stored lowercased; PipelineID 0 means the main pipeline. 0 when there is no account.
func (s *Simulator) PutSource(host, clientID string, src Source) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(host)
	if a == nil {
		return 0
	}
	if src.PipelineID == 0 {
		src.PipelineID = a.mainPipeline()
	}
	src.ExternalID = strings.ToLower(src.ExternalID)
	s.nextID++
	src.ID = s.nextID
	if src.Default {
		a.clearDefault(clientID)
	}
	a.sources = append(a.sources, &storedSource{Source: src, clientID: clientID})
	return src.ID
}

// EditSource changes a source in place, as a person in Kommo's UI would; false when the
// integration has no source with that external id in the account.
func (s *Simulator) EditSource(host, clientID, externalID string, edit func(*Source)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[host]
	if a == nil {
		return false
	}
	src := a.sourceByExternal(clientID, externalID)
	if src == nil {
		return false
	}
	edit(&src.Source)
	return true
}

func (a *account) pipeline(id int64) *Pipeline {
	for _, p := range a.pipelines {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (a *account) mainPipeline() int64 {
	for _, p := range a.pipelines {
		if p.IsMain {
			return p.ID
		}
	}
	return 0
}

func (a *account) sourceByExternal(clientID, externalID string) *storedSource {
	for _, src := range a.sources {
		if src.clientID == clientID && strings.EqualFold(src.ExternalID, externalID) {
			return src
		}
	}
	return nil
}

func (a *account) sourceByID(clientID string, id int64) *storedSource {
	for _, src := range a.sources {
		if src.clientID == clientID && src.ID == id {
			return src
		}
	}
	return nil
}

func (a *account) clearDefault(clientID string) {
	for _, src := range a.sources {
		if src.clientID == clientID {
			src.Default = false
		}
	}
}

func (a *account) countSources(clientID string) int {
	n := 0
	for _, src := range a.sources {
		if src.clientID == clientID {
			n++
		}
	}
	return n
}

// newAccountLocked creates an account with its main pipeline.
func (s *Simulator) newAccountLocked(host string, id int64, amojoID string) *account {
	s.nextID++
	return &account{host: host, id: id, amojoID: amojoID,
		pipelines: []*Pipeline{{ID: s.nextID, Name: mainPipelineName, IsMain: true}}}
}

// widgetSourceLocked creates the source Kommo makes itself at install when the
// integration has a widget code and no "multiple sources" setting.
func (s *Simulator) widgetSourceLocked(a *account, clientID string) {
	in := s.integrations[clientID]
	if in == nil || in.widgetCode == "" || in.multipleSources || a.sourceByExternal(clientID, in.widgetCode) != nil {
		return
	}
	s.nextID++
	a.sources = append(a.sources, &storedSource{clientID: clientID, Source: Source{
		ID: s.nextID, Name: in.widgetCode, PipelineID: a.mainPipeline(), ExternalID: strings.ToLower(in.widgetCode),
	}})
}

type itemError struct {
	RequestID string         `json:"request_id"`
	Errors    []itemErrorBit `json:"errors"`
}

type itemErrorBit struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

func writeItemErrors(w http.ResponseWriter, errs []itemError) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"validation-errors": errs,
		"title":             "Bad Request",
		"type":              "https://httpstatus.es/400",
		"status":            http.StatusBadRequest,
		"detail":            "Request validation failed",
	})
}

func sourceJSON(src Source, requestID string) map[string]any {
	m := map[string]any{
		"id": src.ID, "name": src.Name, "pipeline_id": src.PipelineID, "external_id": src.ExternalID,
		"services": []any{}, "default": src.Default, "origin_code": src.OriginCode,
	}
	if src.OriginCode == "" {
		m["origin_code"] = nil
	}
	if requestID != "" {
		m["request_id"] = requestID
	}
	return m
}

// sourceItem is one item of a POST or PATCH body; pointers tell absent from empty.
type sourceItem struct {
	ID         *int64  `json:"id"`
	Name       *string `json:"name"`
	ExternalID *string `json:"external_id"`
	PipelineID *int64  `json:"pipeline_id"`
	Default    *bool   `json:"default"`
	OriginCode *string `json:"origin_code"`
	Services   any     `json:"services"`
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return v != ""
}

func validOriginCode(v string) bool {
	return len(v) <= 20 && strings.Trim(v, "0123456789") != "" && strings.Trim(v, `"`) != "" && printableASCII(v)
}

// sourcesLocked serves /api/v4/sources[/{id}] and /api/v4/leads/pipelines.
func (s *Simulator) sourcesLocked(w http.ResponseWriter, r *http.Request, host string, body []byte, c *Call) {
	a := s.accountLocked(host)
	if a == nil {
		writeProblem(w, http.StatusNotFound, "", "Account not found")
		return
	}
	g := s.bearerLocked(w, r, a, c)
	if g == nil {
		return
	}
	if r.URL.Path == "/api/v4/leads/pipelines" {
		if r.Method != http.MethodGet {
			writeProblem(w, http.StatusMethodNotAllowed, "", "Method not allowed")
			return
		}
		var ps []map[string]any
		for _, p := range a.pipelines {
			ps = append(ps, map[string]any{"id": p.ID, "name": p.Name, "sort": 1, "is_main": p.IsMain,
				"is_unsorted_on": true, "is_archive": p.IsArchive, "account_id": a.id})
		}
		writeJSON(w, http.StatusOK, map[string]any{"_total_items": len(ps), "_embedded": map[string]any{"pipelines": ps}})
		return
	}
	clientID := g.clientID
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/v4/sources"), "/")
	if rest != "" {
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || strings.Contains(rest, "/") {
			writeProblem(w, http.StatusNotFound, "", "Not found")
			return
		}
		s.oneSourceLocked(w, r, a, clientID, id, body)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.listSourcesLocked(w, r, a, clientID)
	case http.MethodPost:
		s.createSourcesLocked(w, a, clientID, body)
	case http.MethodPatch:
		var items []sourceItem
		if json.Unmarshal(body, &items) != nil || len(items) == 0 || len(items) > maxSourcesPerRequest {
			writeProblem(w, http.StatusBadRequest, "", "Request body must be an array of 1 to 50 sources")
			return
		}
		s.updateSourcesLocked(w, a, clientID, items, true)
	case http.MethodDelete:
		s.deleteSourcesLocked(w, a, clientID, body)
	default:
		writeProblem(w, http.StatusMethodNotAllowed, "", "Method not allowed")
	}
}

func (s *Simulator) listSourcesLocked(w http.ResponseWriter, r *http.Request, a *account, clientID string) {
	var filter []string
	for k, v := range r.URL.Query() {
		if k == "filter[external_id]" || strings.HasPrefix(k, "filter[external_id][") {
			filter = append(filter, v...)
		}
	}
	var out []map[string]any
	for _, src := range a.sources {
		if src.clientID != clientID {
			continue
		}
		if filter != nil && !slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, src.ExternalID) }) {
			continue
		}
		out = append(out, sourceJSON(src.Source, ""))
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"_total_items": len(out), "_embedded": map[string]any{"sources": out}})
}

func (s *Simulator) createSourcesLocked(w http.ResponseWriter, a *account, clientID string, body []byte) {
	var items []sourceItem
	if json.Unmarshal(body, &items) != nil || len(items) == 0 || len(items) > maxSourcesPerRequest {
		writeProblem(w, http.StatusBadRequest, "", "Request body must be an array of 1 to 50 sources")
		return
	}
	limit := s.o.SourceLimit
	if limit <= 0 {
		limit = defaultSourceLimit
	}
	have := a.countSources(clientID)
	var errs []itemError
	seen := map[string]bool{}
	for i, it := range items {
		fail := func(code, path, detail string) {
			errs = append(errs, itemError{RequestID: strconv.Itoa(i), Errors: []itemErrorBit{{Code: code, Path: path, Detail: detail}}})
		}
		ext := ""
		if it.ExternalID != nil {
			ext = strings.ToLower(*it.ExternalID)
		}
		switch {
		case it.Name == nil || strings.TrimSpace(*it.Name) == "":
			fail("NotBlank", "name", "This value should not be blank.")
		case ext == "":
			fail("NotBlank", "external_id", "This value should not be blank.")
		case len(ext) > 36 || !printableASCII(ext):
			fail("InvalidValue", "external_id", "This value is not valid.")
		case seen[ext] || a.sourceByExternal(clientID, ext) != nil:
			fail("NotUnique", "external_id", "This value is already used.")
		case it.PipelineID != nil && a.pipeline(*it.PipelineID) == nil:
			fail("NotSupportedChoice", "pipeline_id", "The value you selected is not a valid choice.")
		case it.OriginCode != nil && !validOriginCode(*it.OriginCode):
			fail("InvalidValue", "origin_code", "This value is not valid.")
		case have+len(seen) >= limit:
			fail("SourcesLimitExceeded", "", "The integration has too many sources.")
		case ext != "" && s.takeFaultLocked("create_sources", a.host, ext) != nil:
			fail("InvalidValue", "name", "This value is not valid.")
		}
		seen[ext] = true
	}
	if errs != nil {
		writeItemErrors(w, errs)
		return
	}
	var out []map[string]any
	for i, it := range items {
		src := Source{Name: *it.Name, ExternalID: strings.ToLower(*it.ExternalID), PipelineID: a.mainPipeline()}
		if it.PipelineID != nil {
			src.PipelineID = *it.PipelineID
		}
		if it.OriginCode != nil {
			src.OriginCode = *it.OriginCode
		}
		if it.Default != nil && *it.Default {
			a.clearDefault(clientID)
			src.Default = true
		}
		s.nextID++
		src.ID = s.nextID
		a.sources = append(a.sources, &storedSource{Source: src, clientID: clientID})
		out = append(out, sourceJSON(src, strconv.Itoa(i)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"_total_items": len(out), "_embedded": map[string]any{"sources": out}})
}

// updateSourcesLocked applies PATCH items; batch selects the array answer.
func (s *Simulator) updateSourcesLocked(w http.ResponseWriter, a *account, clientID string, items []sourceItem, batch bool) {
	var errs []itemError
	defaults := 0
	for i, it := range items {
		fail := func(code, path, detail string) {
			errs = append(errs, itemError{RequestID: strconv.Itoa(i), Errors: []itemErrorBit{{Code: code, Path: path, Detail: detail}}})
		}
		var cur *storedSource
		if it.ID != nil {
			cur = a.sourceByID(clientID, *it.ID)
		}
		if it.Default != nil && *it.Default {
			defaults++
		}
		switch {
		case it.ID == nil:
			fail("NotBlank", "id", "This value should not be blank.")
		case cur == nil:
			fail("EntityNotFound", "id", "Entity not found.")
		case it.ExternalID != nil && !strings.EqualFold(*it.ExternalID, cur.ExternalID):
			fail("NotEditable", "external_id", "This value cannot be changed.")
		case it.Name != nil && strings.TrimSpace(*it.Name) == "":
			fail("NotBlank", "name", "This value should not be blank.")
		case it.PipelineID != nil && a.pipeline(*it.PipelineID) == nil:
			fail("NotSupportedChoice", "pipeline_id", "The value you selected is not a valid choice.")
		case it.OriginCode != nil && !validOriginCode(*it.OriginCode):
			fail("InvalidValue", "origin_code", "This value is not valid.")
		case defaults > 1:
			fail("InvalidValue", "default", "Only one source can be the default.")
		case cur.ExternalID != "" && s.takeFaultLocked("update_sources", a.host, cur.ExternalID) != nil:
			fail("InvalidValue", "name", "This value is not valid.")
		}
	}
	if errs != nil {
		writeItemErrors(w, errs)
		return
	}
	var out []map[string]any
	for i, it := range items {
		cur := a.sourceByID(clientID, *it.ID)
		if it.Name != nil {
			cur.Name = *it.Name
		}
		// As documented: without pipeline_id the source goes to the main pipeline.
		cur.PipelineID = a.mainPipeline()
		if it.PipelineID != nil {
			cur.PipelineID = *it.PipelineID
		}
		if it.OriginCode != nil {
			cur.OriginCode = *it.OriginCode
		}
		if it.Default != nil {
			if *it.Default {
				a.clearDefault(clientID)
			}
			cur.Default = *it.Default
		}
		out = append(out, sourceJSON(cur.Source, strconv.Itoa(i)))
	}
	if !batch {
		writeJSON(w, http.StatusOK, out[0])
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"_total_items": len(out), "_embedded": map[string]any{"sources": out}})
}

func (s *Simulator) deleteSourcesLocked(w http.ResponseWriter, a *account, clientID string, body []byte) {
	var items []struct {
		ID *int64 `json:"id"`
	}
	if json.Unmarshal(body, &items) != nil || len(items) == 0 {
		writeProblem(w, http.StatusBadRequest, "", "Request body must be an array of sources")
		return
	}
	var errs []itemError
	for i, it := range items {
		if it.ID == nil || a.sourceByID(clientID, *it.ID) == nil {
			errs = append(errs, itemError{RequestID: strconv.Itoa(i), Errors: []itemErrorBit{{Code: "EntityNotFound", Path: "id", Detail: "Entity not found."}}})
		}
	}
	if errs != nil {
		writeItemErrors(w, errs)
		return
	}
	for _, it := range items {
		a.deleteSource(clientID, *it.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *account) deleteSource(clientID string, id int64) {
	a.sources = slices.DeleteFunc(a.sources, func(src *storedSource) bool { return src.clientID == clientID && src.ID == id })
}

// oneSourceLocked serves GET, PATCH and DELETE /api/v4/sources/{id}.
func (s *Simulator) oneSourceLocked(w http.ResponseWriter, r *http.Request, a *account, clientID string, id int64, body []byte) {
	cur := a.sourceByID(clientID, id)
	switch r.Method {
	case http.MethodGet:
		if cur == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, sourceJSON(cur.Source, ""))
	case http.MethodPatch:
		var it sourceItem
		dec := json.NewDecoder(bytes.NewReader(body))
		if dec.Decode(&it) != nil {
			writeProblem(w, http.StatusBadRequest, "", "Request body must be a source")
			return
		}
		if cur == nil {
			writeProblem(w, http.StatusNotFound, "", "Not found")
			return
		}
		it.ID = &id
		s.updateSourcesLocked(w, a, clientID, []sourceItem{it}, false)
	case http.MethodDelete:
		if cur == nil {
			writeProblem(w, http.StatusNotFound, "", "Not found")
			return
		}
		a.deleteSource(clientID, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeProblem(w, http.StatusMethodNotAllowed, "", "Method not allowed")
	}
}
