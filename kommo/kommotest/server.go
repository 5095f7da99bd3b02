package kommotest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/kommo-operator/kommo-operator/kommo"
)

// Handler serves the Kommo APIs and, under /_sim/, the control API.
func (s *Simulator) Handler() http.Handler {
	ctl := s.ControlHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sim/") {
			ctl.ServeHTTP(w, r)
			return
		}
		s.ServeHTTP(w, r)
	})
}

// ServeHTTP serves the Kommo APIs, routing on r.Host without its port: amojo.* hosts are
// the Chats API, every other host the account API and OAuth endpoints.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return
	}
	call := Call{Host: host, Method: r.Method, Path: r.URL.Path, Op: opOf(host, r, body)}
	if call.Op == "exchange" || call.Op == "refresh" {
		call.ClientID = tokenParams(r, body).Get("client_id")
	}

	s.mu.Lock()
	call.Time = s.o.Now()
	rec := httptest.NewRecorder()
	decided := true
	var f *Fault
	switch {
	case len(body) > maxRequestBody:
		writeProblem(rec, http.StatusRequestEntityTooLarge, "", "Request body too large")
	case !s.allowLocked(host, rec):
	default:
		decided = false
		f = s.takeFaultLocked(call.Op, host, "")
	}
	s.mu.Unlock()

	if !decided {
		if f != nil && f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				s.record(call) // Status 0: the client gave up
				return
			}
		}
		if f != nil && f.Status != 0 && !f.DropResponse {
			writeFault(rec, host, f)
		} else {
			s.mu.Lock()
			call.Time = s.o.Now()
			s.handleLocked(rec, r, host, body, &call)
			s.mu.Unlock()
		}
	}
	call.Status = rec.Code
	if f != nil && f.DropResponse {
		call.Dropped = true
		s.mu.Lock()
		s.stats.DroppedResponses++
		s.mu.Unlock()
		s.record(call)
		dropConnection(w)
		return
	}
	s.record(call)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (s *Simulator) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// dropConnection closes the connection without an answer, or answers 502 when the
// connection cannot be taken over.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}

// allowLocked applies the per-host rate limit, writing a 429 when over it.
func (s *Simulator) allowLocked(host string, w http.ResponseWriter) bool {
	if s.o.QPS < 0 {
		return true
	}
	lim := s.limiters[host]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(s.o.QPS), max(1, int(math.Ceil(s.o.QPS))))
		s.limiters[host] = lim
	}
	now := s.o.RateClock()
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if r.OK() && d <= 0 {
		return true
	}
	r.CancelAt(now)
	writeRateLimited(w, host, d)
	return false
}

// takeFaultLocked takes a queued fault for op at host: with externalID "", one aimed at
// the whole call; otherwise one aimed at the item with that external id.
func (s *Simulator) takeFaultLocked(op, host, externalID string) *Fault {
	for i, q := range s.faults {
		if strings.EqualFold(q.ExternalID, externalID) && (q.Op == "" || q.Op == op) && (q.Host == "" || q.Host == host) {
			q.left--
			if q.left <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			f := q.Fault
			return &f
		}
	}
	return nil
}

// opOf names the operation a request performs, as in Fault.Op.
func opOf(host string, r *http.Request, body []byte) string {
	p := r.URL.Path
	if isAmojo(host) {
		switch {
		case strings.HasPrefix(p, "/v2/origin/custom/") && strings.HasSuffix(p, "/connect"):
			return "connect"
		case strings.HasPrefix(p, "/v2/origin/custom/") && strings.HasSuffix(p, "/disconnect"):
			return "disconnect"
		}
		return ""
	}
	switch p {
	case "/oauth2/access_token":
		switch tokenParams(r, body).Get("grant_type") {
		case "authorization_code":
			return "exchange"
		case "refresh_token":
			return "refresh"
		}
		return "token"
	case "/oauth2/account/current/subdomain":
		return "subdomain"
	case "/api/v4/account":
		return "account"
	case "/api/v4/leads/pipelines":
		return "pipelines"
	}
	if p == "/api/v4/sources" || strings.HasPrefix(p, "/api/v4/sources/") {
		switch r.Method {
		case http.MethodGet:
			return "list_sources"
		case http.MethodPost:
			return "create_sources"
		case http.MethodPatch:
			return "update_sources"
		case http.MethodDelete:
			return "delete_sources"
		}
	}
	return ""
}

func isAmojo(host string) bool { return strings.HasPrefix(host, "amojo.") }

// tokenParams reads a token request body, JSON or form encoded; nil when neither.
func tokenParams(r *http.Request, body []byte) url.Values {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var m map[string]any
		if json.Unmarshal(body, &m) != nil {
			return nil
		}
		v := url.Values{}
		for k, x := range m {
			if s, ok := x.(string); ok {
				v.Set(k, s)
			}
		}
		return v
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil
		}
		return v
	}
	return nil
}

func (s *Simulator) handleLocked(w http.ResponseWriter, r *http.Request, host string, body []byte, c *Call) {
	if isAmojo(host) {
		s.chatsLocked(w, r, host, body, c)
		return
	}
	if _, gone := s.renamed[host]; gone {
		writeProblem(w, http.StatusNotFound, "", "Account not found")
		return
	}
	switch r.URL.Path {
	case "/oauth2/access_token":
		if r.Method != http.MethodPost {
			writeProblem(w, http.StatusMethodNotAllowed, "", "Method not allowed")
			return
		}
		s.tokenLocked(w, r, host, body)
	case "/oauth2/account/current/subdomain":
		if r.Method != http.MethodGet {
			writeProblem(w, http.StatusMethodNotAllowed, "", "Method not allowed")
			return
		}
		s.subdomainLocked(w, r, c)
	case "/api/v4/account":
		if r.Method != http.MethodGet {
			writeProblem(w, http.StatusMethodNotAllowed, "", "Method not allowed")
			return
		}
		s.accountAPILocked(w, r, host, c)
	case "/api/v4/leads/pipelines":
		s.sourcesLocked(w, r, host, body, c)
	default:
		if r.URL.Path == "/api/v4/sources" || strings.HasPrefix(r.URL.Path, "/api/v4/sources/") {
			s.sourcesLocked(w, r, host, body, c)
			return
		}
		writeProblem(w, http.StatusNotFound, "", "Not found")
	}
}

// Hints of Kommo's OAuth server (league/oauth2-server).
const (
	hintRevoked          = "Token has been revoked"
	hintExpired          = "Token has expired"
	hintBadRefresh       = "Cannot decrypt the refresh token"
	hintNotLinked        = "Token is not linked to client"
	hintCodeExpired      = "Authorization code has expired"
	hintCodeRevoked      = "Authorization code has been revoked"
	hintBadCode          = "Cannot decrypt the authorization code"
	hintCodeOtherClient  = "Authorization code was not issued to this client"
	detailClientAuthFail = "Client authentication failed"
)

func (s *Simulator) tokenLocked(w http.ResponseWriter, r *http.Request, host string, body []byte) {
	p := tokenParams(r, body)
	if p == nil {
		writeProblem(w, http.StatusBadRequest, "", "Request body must be JSON or form encoded")
		return
	}
	gt := p.Get("grant_type")
	if gt != "authorization_code" && gt != "refresh_token" {
		writeProblem(w, http.StatusBadRequest, "", "The authorization grant type is not supported")
		return
	}
	clientID := p.Get("client_id")
	in := s.integrations[clientID]
	if in == nil || p.Get("client_secret") != in.secret || p.Get("redirect_uri") != in.redirectURI {
		writeProblem(w, http.StatusUnauthorized, "", detailClientAuthFail)
		return
	}
	a := s.accountLocked(host)
	if a == nil {
		writeProblem(w, http.StatusNotFound, "", "Account not found")
		return
	}
	now := s.o.Now()
	if gt == "authorization_code" {
		code := s.codes[p.Get("code")]
		if code != nil && code.acct == a && code.exchanges > 0 {
			code.reuses++
			s.stats.CodesExchangedTwice++
		}
		switch {
		case code == nil || code.acct != a:
			writeProblem(w, http.StatusBadRequest, hintBadCode, "")
		case code.used:
			writeProblem(w, http.StatusBadRequest, hintCodeRevoked, "")
		case !now.Before(code.expires):
			writeProblem(w, http.StatusBadRequest, hintCodeExpired, "")
		case code.clientID != clientID:
			writeProblem(w, http.StatusBadRequest, hintCodeOtherClient, "")
		default:
			code.used = true
			code.exchanges++
			code.exchangedAt = now
			s.stats.Exchanges++
			s.widgetSourceLocked(a, clientID)
			g := s.issueLocked(a, clientID, now)
			g.origin = code
			s.writeGrantLocked(w, g, now)
		}
		return
	}

	g := s.refresh[p.Get("refresh_token")]
	switch {
	case g == nil:
		writeProblem(w, http.StatusBadRequest, hintBadRefresh, "")
		return
	case g.clientID != clientID:
		writeProblem(w, http.StatusUnauthorized, hintNotLinked, "")
		return
	case g.revoked || g.acct != a:
		writeProblem(w, http.StatusUnauthorized, hintRevoked, "")
		return
	case !now.Before(g.refreshExp):
		writeProblem(w, http.StatusUnauthorized, hintExpired, "")
		return
	}
	if g.refreshUsed {
		s.replays++
		n := g.next
		if n != nil && n.used {
			// Sent after its successor was used: the client lost track of its tokens.
			s.stats.BurntRefreshTokens++
		}
		if !s.o.RefreshGrace || n == nil || n.used || n.revoked {
			writeProblem(w, http.StatusUnauthorized, hintRevoked, "")
			return
		}
		// Grace: the unused successor is replaced by a fresh pair.
		n.revoked = true
		s.stats.Recoveries++
	}
	g.used, g.refreshUsed = true, true
	g.next = s.issueLocked(a, clientID, now)
	g.next.origin = g.origin
	s.stats.Refreshes++
	s.writeGrantLocked(w, g.next, now)
}

func (s *Simulator) issueLocked(a *account, clientID string, now time.Time) *grant {
	g := &grant{
		acct:       a,
		clientID:   clientID,
		refresh:    "def50200" + randomHex(256),
		accessExp:  now.Add(s.o.TokenLifetime),
		refreshExp: now.Add(s.o.RefreshTokenLifetime),
	}
	g.access = s.jwtLocked(a, clientID, now, g.accessExp)
	s.access[g.access] = g
	s.refresh[g.refresh] = g
	s.secrets = append(s.secrets, g.access, g.refresh)
	return g
}

func (s *Simulator) writeGrantLocked(w http.ResponseWriter, g *grant, now time.Time) {
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":    "Bearer",
		"expires_in":    ceilSeconds(s.o.TokenLifetime),
		"server_time":   now.Unix(),
		"access_token":  g.access,
		"refresh_token": g.refresh,
	})
}

// jwtLocked mints an HS256 access token shaped like Kommo's.
func (s *Simulator) jwtLocked(a *account, clientID string, now, exp time.Time) string {
	_, suffix, _ := strings.Cut(a.host, ".")
	claims := map[string]any{
		"aud":         clientID,
		"jti":         randomHex(80),
		"iat":         now.Unix(),
		"nbf":         now.Unix(),
		"exp":         exp.Unix(),
		"sub":         "1",
		"account_id":  a.id,
		"base_domain": suffix,
		"version":     2,
		"scopes":      []string{"crm", "files", "files_delete", "notifications", "push_notifications"},
		"hash_uuid":   randomHex(8) + "-" + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(12),
		"api_domain":  apiDomain(a.host),
	}
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`))
	payload, _ := json.Marshal(claims)
	signing := head + "." + enc.EncodeToString(payload)
	return signing + "." + enc.EncodeToString(hmacSHA256(s.jwtKey, signing))
}

// apiDomain is the regional API host Kommo puts in the JWT; the simulator serves the
// subdomain lookup there.
func apiDomain(accountHost string) string {
	_, suffix, _ := strings.Cut(accountHost, ".")
	return "api-c." + suffix
}

// bearerLocked authenticates a Bearer call, writing a 401 when it fails.
func (s *Simulator) bearerLocked(w http.ResponseWriter, r *http.Request, a *account, c *Call) *grant {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g := s.access[tok]
	switch {
	case !ok || g == nil || g.acct != a:
		writeProblem(w, http.StatusUnauthorized, "", "Unauthorized")
		return nil
	case g.revoked:
		c.ClientID = g.clientID
		writeProblem(w, http.StatusUnauthorized, hintRevoked, "")
		return nil
	case !s.o.Now().Before(g.accessExp):
		c.ClientID = g.clientID
		writeProblem(w, http.StatusUnauthorized, hintExpired, "")
		return nil
	}
	c.ClientID = g.clientID
	g.used = true
	return g
}

func (s *Simulator) accountAPILocked(w http.ResponseWriter, r *http.Request, host string, c *Call) {
	a := s.accountLocked(host)
	if a == nil {
		writeProblem(w, http.StatusNotFound, "", "Account not found")
		return
	}
	if s.bearerLocked(w, r, a, c) == nil {
		return
	}
	label, _, _ := strings.Cut(a.host, ".")
	resp := map[string]any{
		"id":              a.id,
		"name":            label,
		"subdomain":       label,
		"current_user_id": 1,
		"country":         "US",
		"currency":        "USD",
		"_links":          map[string]any{"self": map[string]string{"href": "https://" + a.host + "/api/v4/account"}},
	}
	for _, with := range strings.Split(r.URL.Query().Get("with"), ",") {
		if strings.TrimSpace(with) == "amojo_id" {
			resp["amojo_id"] = a.amojoID
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Simulator) subdomainLocked(w http.ResponseWriter, r *http.Request, c *Call) {
	g := s.refresh[r.Header.Get("X-Refresh-Token")]
	if g == nil || g.revoked || g.refreshUsed || !s.o.Now().Before(g.refreshExp) {
		writeProblem(w, http.StatusUnauthorized, hintRevoked, "")
		return
	}
	c.ClientID = g.clientID
	label, _, _ := strings.Cut(g.acct.host, ".")
	writeJSON(w, http.StatusOK, map[string]any{
		"id":               g.acct.id,
		"subdomain":        label,
		"domain":           g.acct.host,
		"top_level_domain": g.acct.host[strings.LastIndexByte(g.acct.host, '.')+1:],
	})
}

func (s *Simulator) chatsLocked(w http.ResponseWriter, r *http.Request, host string, body []byte, c *Call) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/origin/custom/")
	id, action, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || (action != "connect" && action != "disconnect") {
		writeAmojoError(w, http.StatusNotFound, "NOT_FOUND")
		return
	}
	if want := map[string]string{"connect": http.MethodPost, "disconnect": http.MethodDelete}[action]; r.Method != want {
		writeAmojoError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
		return
	}
	ch := s.channels[id]
	if ch == nil {
		writeAmojoError(w, http.StatusNotFound, "ORIGIN_NOT_REGISTERED")
		return
	}
	c.ClientID = ch.clientID
	if sig := r.Header.Get("X-Signature"); sig != "" {
		s.secrets = append(s.secrets, sig)
	}
	if err := kommo.VerifyChatRequest(ch.secret, r.Method, r.URL.Path, body, r.Header, s.o.Now(), kommo.ChatSignatureWindow); err != nil {
		writeAmojoError(w, http.StatusForbidden, "ORIGIN_INVALID_SIGNATURE")
		return
	}
	var req struct {
		AccountID      string  `json:"account_id"`
		Title          *string `json:"title"`
		HookAPIVersion string  `json:"hook_api_version"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if dec.Decode(&req) != nil || req.AccountID == "" {
		writeAmojoError(w, http.StatusBadRequest, "INVALID_REQUEST")
		return
	}
	a := s.byAmojo[req.AccountID]
	if a == nil {
		writeAmojoError(w, http.StatusBadRequest, "ACCOUNT_NOT_FOUND")
		return
	}
	// Each region's amojo knows only its own accounts.
	if h, err := kommo.AmojoHost(a.host); err != nil || h != host {
		writeAmojoError(w, http.StatusBadRequest, "ACCOUNT_NOT_FOUND")
		return
	}
	k := connKey{channelID: ch.id, amojoID: a.amojoID}
	if action == "disconnect" {
		delete(s.connections, k)
		w.WriteHeader(http.StatusOK)
		return
	}
	if req.Title == nil {
		writeAmojoError(w, http.StatusBadRequest, "INVALID_REQUEST")
		return
	}
	hook := req.HookAPIVersion
	if hook == "" {
		hook = "v1"
	}
	scope := ch.id + "_" + a.amojoID
	s.connections[k] = scope
	writeJSON(w, http.StatusOK, map[string]string{
		"account_id":       a.amojoID,
		"scope_id":         scope,
		"title":            *req.Title,
		"hook_api_version": hook,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeProblem writes Kommo's problem JSON. title is localized in Kommo: clients must not
// branch on it, so the simulator makes it useless to.
func writeProblem(w http.ResponseWriter, status int, hint, detail string) {
	writeProblemRetry(w, status, hint, detail, 0)
}

func writeProblemRetry(w http.ResponseWriter, status int, hint, detail string, retryAfter int) {
	p := map[string]any{
		"title":  "Ошибка " + strconv.Itoa(status),
		"type":   "https://httpstatus.es/" + strconv.Itoa(status),
		"status": status,
	}
	if detail != "" {
		p["detail"] = detail
	}
	if hint != "" {
		p["hint"] = hint
	}
	if retryAfter > 0 {
		p["retry_after"] = retryAfter
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

func writeAmojoError(w http.ResponseWriter, status int, errorType string) {
	writeJSON(w, status, map[string]any{"status": 0, "error_code": status, "error_type": errorType})
}

func writeRateLimited(w http.ResponseWriter, host string, d time.Duration) {
	if isAmojo(host) {
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"status": 0, "error_code": 429, "error_type": "TOO_MANY_REQUESTS", "retry_after": ceilSeconds(d),
		})
		return
	}
	writeProblemRetry(w, http.StatusTooManyRequests, "", "Too many requests", ceilSeconds(d))
}

const blockedPage = `<!DOCTYPE html>
<html><head><title>403 Forbidden</title></head>
<body><h1>Access denied</h1><p>Your IP address has been blocked.</p></body></html>
`

func writeFault(w http.ResponseWriter, host string, f *Fault) {
	switch {
	case f.Status == http.StatusForbidden && f.HTMLBlocked:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, blockedPage)
	case f.Status == http.StatusTooManyRequests:
		writeRateLimited(w, host, f.RetryAfter)
	case f.Status >= 502 && f.Status <= 504:
		// What nginx in front of Kommo answers.
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		io.WriteString(w, "<html><body><center><h1>"+strconv.Itoa(f.Status)+" "+http.StatusText(f.Status)+"</h1></center><hr><center>nginx</center></body></html>\n")
	case isAmojo(host):
		writeAmojoError(w, f.Status, f.Hint)
	default:
		writeProblem(w, f.Status, f.Hint, http.StatusText(f.Status))
	}
}
