package kommotest

import (
	"encoding/json"
	"net/http"
	"time"
)

// ControlHandler serves the simulator's control API, for the demo, benchmarks and e2e
// tests that drive a simulator in another process:
//
//	POST /_sim/code?account=HOST&client_id=ID        → the code as text/plain, no newline (IssueCode)
//	POST /_sim/revoke?account=HOST&client_id=ID      → the revoke hook query string (RevokeAccess)
//	POST /_sim/rename?from=HOST&to=HOST              → 204 (Rename)
//	POST /_sim/fault                                 → 204; body {"op","host","times","status","hint",
//	                                                   "htmlBlocked","retryAfter":"3s","latency":"1s","dropResponse",
//	                                                   "externalID"} (Inject)
//	DELETE /_sim/fault                               → 204; drops every queued fault (ClearFaults)
//	GET  /_sim/calls                                 → the call log as JSON (Calls)
//	GET  /_sim/connection?channel=ID&account=HOST    → {"connected":bool,"scope_id":"…"}
//	GET  /_sim/account?account=HOST                  → {"id":…,"amojo_id":"…"} or 404
//	GET  /_sim/sources?account=HOST&client_id=ID     → the integration's sources in the account as JSON (Sources)
//	GET  /_sim/secrets                               → every secret issued or known, a JSON array (Secrets), for leak scans
//	GET  /_sim/stats                                 → the OAuth counters as JSON (Stats)
//	POST /_sim/token-status                          → body {"access_token","refresh_token"}; TokenStatus as JSON
//	POST /_sim/code-status                           → body {"code"}; CodeStatus as JSON
//	GET  /_sim/state                                 → the simulator's State as JSON (Export)
//	PUT  /_sim/state                                 → 204; body a State as JSON (Import); 400 and no
//	                                                   change when it does not hold together
//
// The status routes take credentials in the body, never in the URL, and consume nothing.
// It is meant for local use only: it hands out codes and revokes access on request.
func (s *Simulator) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_sim/code", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		code, err := s.issueCode(q.Get("account"), q.Get("client_id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeText(w, code)
	})
	mux.HandleFunc("POST /_sim/revoke", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		v, err := s.revokeAccess(q.Get("account"), q.Get("client_id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeText(w, v.Encode())
	})
	mux.HandleFunc("POST /_sim/rename", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := s.rename(q.Get("from"), q.Get("to")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/fault", func(w http.ResponseWriter, r *http.Request) {
		var f struct {
			Op           string `json:"op"`
			Host         string `json:"host"`
			Times        int    `json:"times"`
			Status       int    `json:"status"`
			Hint         string `json:"hint"`
			HTMLBlocked  bool   `json:"htmlBlocked"`
			RetryAfter   string `json:"retryAfter"`
			Latency      string `json:"latency"`
			DropResponse bool   `json:"dropResponse"`
			ExternalID   string `json:"externalID"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		err := dec.Decode(&f)
		retry, err1 := parseDuration(f.RetryAfter)
		latency, err2 := parseDuration(f.Latency)
		if err != nil || err1 != nil || err2 != nil {
			http.Error(w, `body must be JSON like {"op":"refresh","status":503,"times":2,"retryAfter":"3s","latency":"1s"}`, http.StatusBadRequest)
			return
		}
		s.Inject(Fault{Op: f.Op, Host: f.Host, Times: f.Times, Status: f.Status, Hint: f.Hint, HTMLBlocked: f.HTMLBlocked,
			RetryAfter: retry, Latency: latency, DropResponse: f.DropResponse, ExternalID: f.ExternalID})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sim/fault", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Calls())
	})
	mux.HandleFunc("GET /_sim/connection", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		_, amojoID, ok := s.Account(q.Get("account"))
		if !ok {
			http.Error(w, "no such account", http.StatusNotFound)
			return
		}
		scope, connected := s.Connection(q.Get("channel"), amojoID)
		writeJSON(w, http.StatusOK, map[string]any{"connected": connected, "scope_id": scope})
	})
	mux.HandleFunc("GET /_sim/sources", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		out := []map[string]any{}
		for _, src := range s.Sources(q.Get("account"), q.Get("client_id")) {
			out = append(out, map[string]any{"id": src.ID, "name": src.Name, "pipeline_id": src.PipelineID,
				"external_id": src.ExternalID, "default": src.Default, "origin_code": src.OriginCode})
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /_sim/account", func(w http.ResponseWriter, r *http.Request) {
		id, amojoID, ok := s.Account(r.URL.Query().Get("account"))
		if !ok {
			http.Error(w, "no such account", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "amojo_id": amojoID})
	})
	mux.HandleFunc("GET /_sim/secrets", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Secrets())
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /_sim/token-status", func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
		}
		if !decodeControl(w, r, &q) {
			return
		}
		writeJSON(w, http.StatusOK, s.TokenStatus(q.Access, q.Refresh))
	})
	mux.HandleFunc("POST /_sim/code-status", func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Code string `json:"code"`
		}
		if !decodeControl(w, r, &q) {
			return
		}
		writeJSON(w, http.StatusOK, s.CodeStatus(q.Code))
	})
	mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Export())
	})
	mux.HandleFunc("PUT /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		var st State
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxStateBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			http.Error(w, "body must be a simulator state as GET /_sim/state returns it: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.Import(st); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// decodeControl reads a small JSON control body into v, answering 400 when it is not one.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "body must be a JSON object with the documented fields", http.StatusBadRequest)
		return false
	}
	return true
}

// maxStateBody bounds an imported state: thousands of grants.
const maxStateBody = 32 << 20

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s))
}
