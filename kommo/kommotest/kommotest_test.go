package kommotest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

const (
	host     = "acme.kommo.com"
	clientID = "4d7e1c0a-1111-4222-8333-944455556666"
	secret   = "sim-client-secret-0123456789abcdef"
	redirect = "https://op.example.com/kommo/ns/int/redirect"
	chanID   = "344a5002-f8ca-454d-af3d-396180102ac7"
	chanKey  = "f2d7f8704eff95087ed45b23ba99c0b5aac8278e"
	amojoID  = "52e591f7-c98f-4255-8495-827210138c81"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t     *testing.T
	sim   *kommotest.Simulator
	srv   *httptest.Server
	clock *clock
}

func newFixture(t *testing.T, o kommotest.Options) *fixture {
	c := &clock{t: t0}
	o.Now = c.Now
	if o.QPS == 0 {
		o.QPS = -1
	}
	sim, srv := kommotest.NewServer(o)
	t.Cleanup(srv.Close)
	sim.AddIntegration(clientID, secret, redirect)
	sim.AddAccount(host, 32720107, amojoID)
	sim.AddChannel(chanID, chanKey)
	return &fixture{t: t, sim: sim, srv: srv, clock: c}
}

// do sends a raw request with the given Host and returns status and body.
func (f *fixture) do(method, hostHdr, path string, hdr http.Header, body string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Host = hostHdr
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func jsonHdr() http.Header { return http.Header{"Content-Type": {"application/json"}} }

func tokenBody(kv ...string) string {
	m := map[string]string{"client_id": clientID, "client_secret": secret, "redirect_uri": redirect}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

type tokenResp struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ServerTime   int64  `json:"server_time"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (f *fixture) exchange() tokenResp {
	f.t.Helper()
	code := f.sim.IssueCode(host, clientID)
	st, body := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code))
	if st != 200 {
		f.t.Fatalf("exchange: %d %s", st, body)
	}
	var r tokenResp
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		f.t.Fatal(err)
	}
	return r
}

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t, kommotest.Options{TokenLifetime: 90 * time.Second})
	r := f.exchange()
	if r.TokenType != "Bearer" || r.ExpiresIn != 90 || r.ServerTime != t0.Unix() || !strings.HasPrefix(r.RefreshToken, "def50200") {
		t.Errorf("token response %+v", r)
	}
	cl, err := kommo.ParseClaims(r.AccessToken)
	if err != nil || cl.AccountID != 32720107 || cl.Audience != clientID || !cl.ExpiresAt.Equal(t0.Add(90*time.Second)) {
		t.Errorf("claims %+v, %v", cl, err)
	}

	// Form encoding is accepted too.
	code := f.sim.IssueCode(host, clientID)
	form := url.Values{"client_id": {clientID}, "client_secret": {secret}, "redirect_uri": {redirect}, "grant_type": {"authorization_code"}, "code": {code}}
	if st, body := f.do("POST", host, "/oauth2/access_token", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form.Encode()); st != 200 {
		t.Errorf("form exchange: %d %s", st, body)
	}

	tests := []struct {
		name    string
		method  string
		host    string
		hdr     http.Header
		body    string
		status  int
		hint    string
		problem bool
	}{
		{"GET", "GET", host, jsonHdr(), "", 405, "", true},
		{"text body", "POST", host, http.Header{"Content-Type": {"text/plain"}}, tokenBody("grant_type", "authorization_code"), 400, "", true},
		{"bad json", "POST", host, jsonHdr(), "{", 400, "", true},
		{"unknown grant", "POST", host, jsonHdr(), tokenBody("grant_type", "password"), 400, "", true},
		{"wrong secret", "POST", host, jsonHdr(), tokenBody("grant_type", "authorization_code", "client_secret", "x"), 401, "", true},
		{"redirect slash", "POST", host, jsonHdr(), tokenBody("grant_type", "authorization_code", "redirect_uri", redirect+"/"), 401, "", true},
		{"unknown client", "POST", host, jsonHdr(), tokenBody("grant_type", "authorization_code", "client_id", "x"), 401, "", true},
		{"unknown code", "POST", host, jsonHdr(), tokenBody("grant_type", "authorization_code", "code", "def50200x"), 400, "Cannot decrypt the authorization code", true},
		{"used code", "POST", host, jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code), 400, "Authorization code has been revoked", true},
		{"unknown refresh", "POST", host, jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", "x"), 400, "Cannot decrypt the refresh token", true},
		{"unknown host", "POST", "nobody.kommo.com", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code), 404, "", true},
		{"huge body", "POST", host, jsonHdr(), `{"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "", true},
		{"unknown path", "GET", host, nil, "", 404, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, body := f.do(tc.method, tc.host, map[bool]string{true: "/oauth2/access_token", false: "/nope"}[tc.name != "unknown path"], tc.hdr, tc.body)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, body)
			}
			var p struct {
				Title  string `json:"title"`
				Type   string `json:"type"`
				Status int    `json:"status"`
				Hint   string `json:"hint"`
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != tc.status || p.Title == "" || p.Type == "" {
				t.Fatalf("not problem JSON: %s", body)
			}
			if p.Hint != tc.hint {
				t.Errorf("hint %q, want %q", p.Hint, tc.hint)
			}
		})
	}
}

func TestCodeRules(t *testing.T) {
	f := newFixture(t, kommotest.Options{CodeTTL: time.Minute})
	f.sim.AddIntegration("other-client", "other-secret", redirect)
	ex := func(code, cid, sec string) (int, string) {
		return f.do("POST", host, "/oauth2/access_token", jsonHdr(),
			tokenBody("grant_type", "authorization_code", "code", code, "client_id", cid, "client_secret", sec))
	}
	code := f.sim.IssueCode(host, clientID)
	if st, body := ex(code, "other-client", "other-secret"); st != 400 || !strings.Contains(body, "not issued to this client") {
		t.Errorf("code of another client: %d %s", st, body)
	}
	f.clock.Advance(time.Minute)
	if st, body := ex(code, clientID, secret); st != 400 || !strings.Contains(body, "has expired") {
		t.Errorf("expired code: %d %s", st, body)
	}
	code = f.sim.IssueCode(host, clientID)
	f.clock.Advance(time.Minute - time.Second)
	if st, body := ex(code, clientID, secret); st != 200 {
		t.Errorf("code within its TTL: %d %s", st, body)
	}
}

func TestRefreshSemantics(t *testing.T) {
	refresh := func(f *fixture, rt string) (int, tokenResp) {
		st, body := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", rt))
		var r tokenResp
		json.Unmarshal([]byte(body), &r)
		return st, r
	}
	account := func(f *fixture, at string) int {
		st, _ := f.do("GET", host, "/api/v4/account", http.Header{"Authorization": {"Bearer " + at}}, "")
		return st
	}

	t.Run("strict", func(t *testing.T) {
		f := newFixture(t, kommotest.Options{})
		r0 := f.exchange()
		st, r1 := refresh(f, r0.RefreshToken)
		if st != 200 {
			t.Fatal(st)
		}
		if st, _ := refresh(f, r0.RefreshToken); st != 401 {
			t.Errorf("reuse: %d", st)
		}
		if st, _ := refresh(f, r0.RefreshToken); st != 401 {
			t.Errorf("reuse: %d", st)
		}
		if n := f.sim.UsedRefreshTokenReplays(); n != 2 {
			t.Errorf("replays %d", n)
		}
		// The old access token still works until it expires; the new pair works.
		if account(f, r0.AccessToken) != 200 || account(f, r1.AccessToken) != 200 {
			t.Error("access tokens")
		}
	})

	t.Run("grace", func(t *testing.T) {
		f := newFixture(t, kommotest.Options{RefreshGrace: true})
		r0 := f.exchange()
		_, r1 := refresh(f, r0.RefreshToken)
		st, r2 := refresh(f, r0.RefreshToken) // r1 unused: allowed, r1 replaced
		if st != 200 || r2.RefreshToken == r1.RefreshToken {
			t.Fatalf("grace reuse: %d", st)
		}
		if account(f, r1.AccessToken) != 401 {
			t.Error("the replaced pair still works")
		}
		if st, _ := refresh(f, r1.RefreshToken); st != 401 {
			t.Error("the replaced refresh token still works")
		}
		if account(f, r2.AccessToken) != 200 {
			t.Fatal("new pair")
		}
		if st, _ := refresh(f, r0.RefreshToken); st != 401 {
			t.Error("old token works after the new pair was used")
		}
		if n := f.sim.UsedRefreshTokenReplays(); n != 2 {
			t.Errorf("replays %d, want 2", n)
		}
	})

	t.Run("lifetime", func(t *testing.T) {
		f := newFixture(t, kommotest.Options{RefreshTokenLifetime: time.Hour, TokenLifetime: time.Minute})
		r0 := f.exchange()
		f.clock.Advance(time.Minute)
		if account(f, r0.AccessToken) != 401 {
			t.Error("expired access token accepted")
		}
		f.clock.Advance(time.Hour)
		if st, _ := refresh(f, r0.RefreshToken); st != 401 {
			t.Errorf("expired refresh token: %d", st)
		}
	})
}

func TestAccountAPI(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	r := f.exchange()
	auth := http.Header{"Authorization": {"Bearer " + r.AccessToken}}
	st, body := f.do("GET", host, "/api/v4/account", auth, "")
	if st != 200 || strings.Contains(body, "amojo_id") {
		t.Errorf("without with=amojo_id: %d %s", st, body)
	}
	st, body = f.do("GET", host, "/api/v4/account?with=users,amojo_id", auth, "")
	var a struct {
		ID      int64  `json:"id"`
		AmojoID string `json:"amojo_id"`
	}
	if json.Unmarshal([]byte(body), &a); st != 200 || a.ID != 32720107 || a.AmojoID != amojoID {
		t.Errorf("with=amojo_id: %d %s", st, body)
	}
	f.sim.AddAccount("other.kommo.com", 9, "other-amojo")
	if st, _ := f.do("GET", "other.kommo.com", "/api/v4/account", auth, ""); st != 401 {
		t.Errorf("token of another account accepted: %d", st)
	}
	for _, h := range []string{"", "Basic x", "Bearer", "bearer " + r.AccessToken} {
		if st, _ := f.do("GET", host, "/api/v4/account", http.Header{"Authorization": {h}}, ""); st != 401 {
			t.Errorf("Authorization %q: %d", h, st)
		}
	}
	// The port of the Host header is ignored.
	if st, _ := f.do("GET", host+":443", "/api/v4/account", auth, ""); st != 200 {
		t.Errorf("host with port: %d", st)
	}
}

func TestAutoAccounts(t *testing.T) {
	f := newFixture(t, kommotest.Options{AutoAccounts: true})
	code := f.sim.IssueCode("new.amocrm.ru", clientID)
	id, am, ok := f.sim.Account("new.amocrm.ru")
	if !ok || id < 10_000_000 || len(am) != 36 {
		t.Fatalf("auto account %d %q %v", id, am, ok)
	}
	// Deterministic: another simulator derives the same ids.
	g := newFixture(t, kommotest.Options{AutoAccounts: true})
	g.sim.IssueCode("new.amocrm.ru", clientID)
	if id2, am2, _ := g.sim.Account("new.amocrm.ru"); id2 != id || am2 != am {
		t.Errorf("not deterministic: %d %s vs %d %s", id, am, id2, am2)
	}
	if st, body := f.do("POST", "new.amocrm.ru", "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code)); st != 200 {
		t.Errorf("exchange: %d %s", st, body)
	}
	for _, h := range []string{"amojo.kommo.com", "api-c.kommo.com", "www.kommo.com", "127.0.0.1", "kommo.com"} {
		if _, _, ok := f.sim.Account(h); ok {
			t.Errorf("service host %s became an account", h)
		}
		f.do("GET", h, "/api/v4/account", nil, "")
		if _, _, ok := f.sim.Account(h); ok {
			t.Errorf("service host %s became an account", h)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("IssueCode for a non-account host did not panic")
		}
	}()
	f.sim.IssueCode("127.0.0.1", clientID)
}

// signed builds a Chats API request the way a correct client does.
func signed(method, path, body, key string, date time.Time) http.Header {
	d := date.UTC().Format(kommo.ChatDateLayout)
	md5, sig := kommo.SignChatRequest(key, method, path, []byte(body), d)
	return http.Header{"Content-Type": {"application/json"}, "Content-Md5": {md5}, "Date": {d}, "X-Signature": {sig}}
}

func TestChatsAPI(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	conn := "/v2/origin/custom/" + chanID + "/connect"
	disc := "/v2/origin/custom/" + chanID + "/disconnect"
	body := `{"account_id":"` + amojoID + `","title":"T","hook_api_version":"v2"}`
	now := f.clock.Now()

	st, resp := f.do("POST", "amojo.kommo.com", conn, signed("POST", conn, body, chanKey, now), body)
	want := `{"account_id":"` + amojoID + `","hook_api_version":"v2","scope_id":"` + chanID + "_" + amojoID + `","title":"T"}`
	if st != 200 || strings.TrimSpace(resp) != want {
		t.Fatalf("connect: %d %s", st, resp)
	}
	// Omitting hook_api_version means v1.
	v1 := `{"account_id":"` + amojoID + `","title":"T"}`
	if st, resp := f.do("POST", "amojo.kommo.com", conn, signed("POST", conn, v1, chanKey, now), v1); st != 200 || !strings.Contains(resp, `"hook_api_version":"v1"`) {
		t.Errorf("v1 connect: %d %s", st, resp)
	}

	sigErr := `{"error_code":403,"error_type":"ORIGIN_INVALID_SIGNATURE","status":0}`
	mut := func(f func(h http.Header)) http.Header {
		h := signed("POST", conn, body, chanKey, now)
		f(h)
		return h
	}
	tests := []struct {
		name   string
		method string
		host   string
		path   string
		hdr    http.Header
		body   string
		status int
		resp   string
	}{
		{"wrong key", "POST", "amojo.kommo.com", conn, signed("POST", conn, body, strings.Repeat("a", 40), now), body, 403, sigErr},
		{"stale date", "POST", "amojo.kommo.com", conn, signed("POST", conn, body, chanKey, now.Add(-16*time.Minute)), body, 403, sigErr},
		{"future date", "POST", "amojo.kommo.com", conn, signed("POST", conn, body, chanKey, now.Add(16*time.Minute)), body, 403, sigErr},
		{"other body", "POST", "amojo.kommo.com", conn, signed("POST", conn, body, chanKey, now), body + " ", 403, sigErr},
		{"charset", "POST", "amojo.kommo.com", conn, mut(func(h http.Header) { h.Set("Content-Type", "application/json; charset=utf-8") }), body, 403, sigErr},
		{"no md5", "POST", "amojo.kommo.com", conn, mut(func(h http.Header) { h.Del("Content-Md5") }), body, 403, sigErr},
		{"query signed", "POST", "amojo.kommo.com", conn + "?a=1", signed("POST", conn+"?a=1", body, chanKey, now), body, 403, sigErr},
		{"unknown channel", "POST", "amojo.kommo.com", "/v2/origin/custom/nope/connect", signed("POST", "/v2/origin/custom/nope/connect", body, chanKey, now), body, 404, `{"error_code":404,"error_type":"ORIGIN_NOT_REGISTERED","status":0}`},
		{"wrong method", "GET", "amojo.kommo.com", conn, signed("GET", conn, body, chanKey, now), body, 405, ""},
		{"unknown amojo", "POST", "amojo.kommo.com", conn, signed("POST", conn, `{"account_id":"x","title":"T"}`, chanKey, now), `{"account_id":"x","title":"T"}`, 400, ""},
		{"other region", "POST", "amojo.amocrm.ru", conn, signed("POST", conn, body, chanKey, now), body, 400, ""},
		{"no title", "POST", "amojo.kommo.com", conn, signed("POST", conn, `{"account_id":"`+amojoID+`"}`, chanKey, now), `{"account_id":"` + amojoID + `"}`, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, resp := f.do(tc.method, tc.host, tc.path, tc.hdr, tc.body)
			if st != tc.status || (tc.resp != "" && strings.TrimSpace(resp) != tc.resp) {
				t.Fatalf("%d %s; want %d %s", st, resp, tc.status, tc.resp)
			}
		})
	}

	dbody := `{"account_id":"` + amojoID + `"}`
	if st, resp := f.do("DELETE", "amojo.kommo.com", disc, signed("DELETE", disc, dbody, chanKey, now), dbody); st != 200 || resp != "" {
		t.Fatalf("disconnect: %d %q", st, resp)
	}
	if _, ok := f.sim.Connection(chanID, amojoID); ok {
		t.Error("still connected")
	}
}

func TestRateLimit(t *testing.T) {
	rc := &clock{t: t0}
	f := newFixture(t, kommotest.Options{QPS: 2, RateClock: rc.Now})
	get := func(h string) (int, string) { return f.do("GET", h, "/api/v4/account", nil, "") }
	for i := 0; i < 2; i++ {
		if st, _ := get(host); st != 401 {
			t.Fatalf("request %d: %d", i, st)
		}
	}
	st, body := get(host)
	var p struct {
		Status     int `json:"status"`
		RetryAfter int `json:"retry_after"`
	}
	if json.Unmarshal([]byte(body), &p); st != 429 || p.Status != 429 || p.RetryAfter != 1 {
		t.Fatalf("over the limit: %d %s", st, body)
	}
	// Per host: another host is not affected.
	if st, _ := get("other.kommo.com"); st == 429 {
		t.Error("limit shared across hosts")
	}
	rc.Advance(500 * time.Millisecond)
	if st, _ := get(host); st != 401 {
		t.Errorf("after half a second: %d", st)
	}
	if n := f.sim.CallCount("account", host); n != 4 {
		t.Errorf("call count %d", n)
	}
}

func TestFaultInjection(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	r := f.exchange()
	auth := http.Header{"Authorization": {"Bearer " + r.AccessToken}}
	f.sim.Inject(kommotest.Fault{Op: "account", Host: "other.kommo.com", Status: 500})
	f.sim.Inject(kommotest.Fault{Op: "account", Status: 503, Times: 2})
	f.sim.Inject(kommotest.Fault{Status: 400, Hint: "Token has expired"})
	for i, want := range []int{503, 503, 400, 200} {
		if st, _ := f.do("GET", host, "/api/v4/account", auth, ""); st != want {
			t.Errorf("request %d: %d, want %d", i, st, want)
		}
	}
	f.sim.Inject(kommotest.Fault{Op: "connect", Status: 500})
	f.sim.Inject(kommotest.Fault{Op: "connect", Status: 500})
	if n := f.sim.PendingFaults(); n != 3 { // with the unmatched other.kommo.com one
		t.Errorf("pending %d", n)
	}
	f.sim.ClearFaults()
	if n := f.sim.PendingFaults(); n != 0 {
		t.Errorf("pending %d after ClearFaults", n)
	}
	f.sim.Inject(kommotest.Fault{Op: "account", Status: 403, HTMLBlocked: true})
	if st, body := f.do("GET", host, "/api/v4/account", auth, ""); st != 403 || !strings.HasPrefix(body, "<!DOCTYPE html>") {
		t.Errorf("blocked: %d %s", st, body)
	}
	f.sim.Inject(kommotest.Fault{Op: "connect", Status: 403, Hint: "ORIGIN_INVALID_SIGNATURE"})
	if st, body := f.do("POST", "amojo.kommo.com", "/v2/origin/custom/x/connect", nil, ""); st != 403 || !strings.Contains(body, "ORIGIN_INVALID_SIGNATURE") {
		t.Errorf("amojo fault: %d %s", st, body)
	}

	// Latency gives up with the client and logs status 0.
	f.sim.Inject(kommotest.Fault{Op: "account", Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/v4/account", nil)
	req.Host = host
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("latency fault answered")
	}
	// Close waits for running handlers: it returns only because the fault gave up with the
	// client (otherwise the test would hang for an hour).
	f.srv.Close()
	calls := f.sim.Calls()
	if last := calls[len(calls)-1]; last.Status != 0 || last.Op != "account" {
		t.Errorf("canceled call logged as %+v", last)
	}
}

func TestDropResponse(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	r := f.exchange()
	f.sim.Inject(kommotest.Fault{Op: "refresh", DropResponse: true})
	req, _ := http.NewRequest("POST", f.srv.URL+"/oauth2/access_token",
		strings.NewReader(tokenBody("grant_type", "refresh_token", "refresh_token", r.RefreshToken)))
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped response arrived: %d", resp.StatusCode)
	}
	// It was applied: the refresh token is spent.
	if st, _ := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", r.RefreshToken)); st != 401 {
		t.Errorf("refresh token not spent: %d", st)
	}
	c := f.sim.Calls()
	if d := c[len(c)-2]; !d.Dropped || d.Status != 200 || d.ClientID != clientID || d.Op != "refresh" {
		t.Errorf("dropped call %+v", d)
	}
}

func TestRevokeAndRename(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	f.sim.AddIntegration("other", "other-secret", redirect)
	f.sim.AddChannel("chan-2", "k2")
	f.sim.BindChannel("chan-2", "other")
	r := f.exchange()
	for _, ch := range []struct{ id, key string }{{chanID, chanKey}, {"chan-2", "k2"}} {
		p := "/v2/origin/custom/" + ch.id + "/connect"
		b := `{"account_id":"` + amojoID + `","title":"T"}`
		if st, resp := f.do("POST", "amojo.kommo.com", p, signed("POST", p, b, ch.key, f.clock.Now()), b); st != 200 {
			t.Fatalf("connect %s: %d %s", ch.id, st, resp)
		}
	}
	pending := f.sim.IssueCode(host, clientID)
	q := f.sim.RevokeAccess(host, clientID)
	if len(q) != 3 || !kommo.VerifyRevokeSignature(secret, clientID, "32720107", q.Get("signature")) {
		t.Errorf("revoke query %v", q)
	}
	if _, ok := f.sim.Connection(chanID, amojoID); ok {
		t.Error("unbound channel still connected")
	}
	if _, ok := f.sim.Connection("chan-2", amojoID); !ok {
		t.Error("another integration's channel was disconnected")
	}
	if st, body := f.do("GET", host, "/api/v4/account", http.Header{"Authorization": {"Bearer " + r.AccessToken}}, ""); st != 401 || !strings.Contains(body, "Token has been revoked") {
		t.Errorf("revoked bearer: %d %s", st, body)
	}
	if st, _ := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", pending)); st != 400 {
		t.Errorf("pending code survived revocation: %d", st)
	}

	r = f.exchange()
	f.sim.Rename(host, "renamed.kommo.com")
	if st, _ := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", r.RefreshToken)); st != 404 {
		t.Errorf("old host: %d", st)
	}
	st, body := f.do("GET", "api-c.kommo.com", "/oauth2/account/current/subdomain", http.Header{"X-Refresh-Token": {r.RefreshToken}}, "")
	if st != 200 || strings.TrimSpace(body) != `{"domain":"renamed.kommo.com","id":32720107,"subdomain":"renamed","top_level_domain":"com"}` {
		t.Errorf("subdomain: %d %s", st, body)
	}
	if st, _ := f.do("GET", "api-c.kommo.com", "/oauth2/account/current/subdomain", nil, ""); st != 401 {
		t.Errorf("subdomain without token: %d", st)
	}
	if st, _ := f.do("POST", "renamed.kommo.com", "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", r.RefreshToken)); st != 200 {
		t.Errorf("new host: %d", st)
	}
}

func TestControlAPI(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	post := func(path string, body string) (int, string) {
		resp, err := http.Post(f.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	st, code := post("/_sim/code?account="+host+"&client_id="+clientID, "")
	if st != 200 || !strings.HasPrefix(code, "def50200") {
		t.Fatalf("code: %d %q", st, code)
	}
	if st, body := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code)); st != 200 {
		t.Fatalf("exchange of a control code: %d %s", st, body)
	}
	if st, _ := post("/_sim/code?account=nobody.kommo.com&client_id="+clientID, ""); st != 400 {
		t.Errorf("code for unknown account: %d", st)
	}
	if st, _ := get("/_sim/code?account=" + host + "&client_id=" + clientID); st != 405 {
		t.Errorf("GET code: %d", st)
	}

	p := "/v2/origin/custom/" + chanID + "/connect"
	b := `{"account_id":"` + amojoID + `","title":"T"}`
	f.do("POST", "amojo.kommo.com", p, signed("POST", p, b, chanKey, f.clock.Now()), b)
	st, body := get("/_sim/connection?channel=" + chanID + "&account=" + host)
	if st != 200 || strings.TrimSpace(body) != `{"connected":true,"scope_id":"`+chanID+"_"+amojoID+`"}` {
		t.Errorf("connection: %d %s", st, body)
	}
	st, body = get("/_sim/account?account=" + host)
	if st != 200 || strings.TrimSpace(body) != `{"amojo_id":"`+amojoID+`","id":32720107}` {
		t.Errorf("account: %d %s", st, body)
	}

	st, body = post("/_sim/revoke?account="+host+"&client_id="+clientID, "")
	q, err := url.ParseQuery(body)
	if st != 200 || err != nil || !kommo.VerifyRevokeSignature(secret, q.Get("client_uuid"), q.Get("account_id"), q.Get("signature")) {
		t.Errorf("revoke: %d %s", st, body)
	}
	if _, body := get("/_sim/connection?channel=" + chanID + "&account=" + host); !strings.Contains(body, `"connected":false`) {
		t.Errorf("after revoke: %s", body)
	}

	if st, _ := post("/_sim/fault", `{"op":"account","status":502,"retryAfter":"2s"}`); st != 204 {
		t.Errorf("fault: %d", st)
	}
	if st, _ := f.do("GET", host, "/api/v4/account", nil, ""); st != 502 {
		t.Errorf("injected fault not applied: %d", st)
	}
	if st, _ := post("/_sim/fault", `{"Nope":1}`); st != 400 {
		t.Errorf("bad fault: %d", st)
	}
	if st, _ := post("/_sim/fault", `{"latency":"soon"}`); st != 400 {
		t.Errorf("bad duration: %d", st)
	}
	if st, _ := post("/_sim/rename?from="+host+"&to=new.kommo.com", ""); st != 204 {
		t.Errorf("rename: %d", st)
	}
	if st, _ := post("/_sim/rename?from="+host+"&to=x.kommo.com", ""); st != 400 {
		t.Errorf("rename of a missing account: %d", st)
	}

	st, body = get("/_sim/calls")
	var calls []kommotest.Call
	if err := json.Unmarshal([]byte(body), &calls); st != 200 || err != nil || len(calls) != 3 {
		t.Fatalf("calls: %d %v %s", st, err, body)
	}
	if calls[0].Op != "exchange" || calls[0].ClientID != clientID || calls[1].Op != "connect" || calls[2].Status != 502 {
		t.Errorf("calls %+v", calls)
	}
	if bytes.Contains([]byte(body), []byte("_sim")) {
		t.Error("control calls logged")
	}
}

func TestSecrets(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	r := f.exchange()
	code := f.sim.IssueCode(host, clientID)
	q := f.sim.RevokeAccess(host, clientID)
	have := map[string]bool{}
	for _, s := range f.sim.Secrets() {
		have[s] = true
	}
	for _, s := range []string{secret, chanKey, r.AccessToken, r.RefreshToken, code, q.Get("signature")} {
		if !have[s] {
			t.Errorf("Secrets() misses %.8s…", s)
		}
	}
}

// TestConcurrentUse is for the race detector.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, kommotest.Options{AutoAccounts: true})
	c, err := kommo.NewClient(kommo.Options{Endpoint: f.srv.URL, QPS: 1e6, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	app := kommo.App{ClientID: clientID, ClientSecret: secret, RedirectURI: redirect}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		h := string(rune('a'+i)) + "x.kommo.com"
		wg.Go(func() {
			tok, err := c.ExchangeCode(context.Background(), h, app, f.sim.IssueCode(h, clientID))
			if err != nil {
				t.Error(err)
				return
			}
			for j := 0; j < 5; j++ {
				if tok, err = c.Refresh(context.Background(), h, app, tok.RefreshToken); err != nil {
					t.Error(err)
					return
				}
			}
			f.sim.Calls()
		})
	}
	wg.Wait()
	if n := f.sim.CallCount("refresh", ""); n != 40 {
		t.Errorf("refresh calls %d", n)
	}
	if f.sim.UsedRefreshTokenReplays() != 0 {
		t.Error("replays")
	}
}

func TestRotateClientSecret(t *testing.T) {
	sim, srv := kommotest.NewServer(kommotest.Options{AutoAccounts: true})
	defer srv.Close()
	c, err := kommo.NewClient(kommo.Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const id, redirect = "01d01160-d7a0-4087-b4af-6a1bb83fcd1d", "https://hooks.example.com/r"
	sim.AddIntegration(id, "old-secret", redirect)
	old := kommo.App{ClientID: id, ClientSecret: "old-secret", RedirectURI: redirect}
	tok, err := c.ExchangeCode(context.Background(), "acme.kommo.com", old, sim.IssueCode("acme.kommo.com", id))
	if err != nil {
		t.Fatal(err)
	}
	sim.RotateClientSecret(id, "new-secret")
	if _, err := c.Refresh(context.Background(), "acme.kommo.com", old, tok.RefreshToken); kommo.KindOf(err) != kommo.KindInvalidClient {
		t.Fatalf("refresh with the old secret: %v, want InvalidClient", err)
	}
	rotated := old
	rotated.ClientSecret = "new-secret"
	if _, err := c.Refresh(context.Background(), "acme.kommo.com", rotated, tok.RefreshToken); err != nil {
		t.Fatalf("refresh with the new secret: %v", err)
	}
	q := sim.RevokeAccess("acme.kommo.com", id)
	if !kommo.VerifyRevokeSignature("new-secret", id, q.Get("account_id"), q.Get("signature")) {
		t.Error("the revoke hook is not signed with the new secret")
	}
}
