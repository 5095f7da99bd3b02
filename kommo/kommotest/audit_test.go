package kommotest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// control posts a JSON body to a /_sim/ route and decodes the answer into v.
func (f *fixture) control(method, path, body string, v any) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		f.t.Fatalf("%s: %v", path, err)
	}
}

func (f *fixture) tokenStatus(r tokenResp) kommotest.TokenStatus {
	var st kommotest.TokenStatus
	b, _ := json.Marshal(map[string]string{"access_token": r.AccessToken, "refresh_token": r.RefreshToken})
	f.control("POST", "/_sim/token-status", string(b), &st)
	return st
}

func (f *fixture) stats() kommotest.Stats {
	var st kommotest.Stats
	f.control("GET", "/_sim/stats", "", &st)
	return st
}

func (f *fixture) refreshWith(rt string) (int, tokenResp) {
	st, body := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", rt))
	var r tokenResp
	json.Unmarshal([]byte(body), &r)
	return st, r
}

func TestAuditCodes(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	f.sim.IssueCode(host, clientID) // seq 1, never sent
	code := f.sim.IssueCode(host, clientID)
	var cs kommotest.CodeStatus
	f.control("POST", "/_sim/code-status", `{"code":"`+code+`"}`, &cs)
	if cs != (kommotest.CodeStatus{Seq: 2}) {
		t.Errorf("fresh code: %+v", cs)
	}
	exchange := func() (int, tokenResp) {
		st, body := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code))
		var r tokenResp
		json.Unmarshal([]byte(body), &r)
		return st, r
	}
	st, r := exchange()
	if st != 200 {
		t.Fatal(st)
	}
	if st, _ := exchange(); st != 400 {
		t.Errorf("second exchange: %d", st)
	}
	f.control("POST", "/_sim/code-status", `{"code":"`+code+`"}`, &cs)
	if cs != (kommotest.CodeStatus{Seq: 2, Exchanged: true, Reuses: 1, ExchangedAt: t0}) {
		t.Errorf("after two exchanges: %+v", cs)
	}
	if got := f.stats(); got.Exchanges != 1 || got.CodesExchangedTwice != 1 {
		t.Errorf("stats %+v", got)
	}
	if got := f.tokenStatus(r); got != (kommotest.TokenStatus{Access: "live", Refresh: "live", SamePair: true, Install: 2}) {
		t.Errorf("token status %+v", got)
	}
	cs = kommotest.CodeStatus{}
	f.control("POST", "/_sim/code-status", `{"code":"nope"}`, &cs)
	if cs != (kommotest.CodeStatus{}) {
		t.Errorf("unknown code: %+v", cs)
	}
}

func TestAuditRefreshes(t *testing.T) {
	f := newFixture(t, kommotest.Options{RefreshGrace: true, TokenLifetime: time.Minute})
	r0 := f.exchange()
	// A refresh whose response is lost: r0 stays recoverable under grace.
	f.sim.Inject(kommotest.Fault{Op: "refresh", DropResponse: true})
	req, _ := http.NewRequest("POST", f.srv.URL+"/oauth2/access_token", strings.NewReader(tokenBody("grant_type", "refresh_token", "refresh_token", r0.RefreshToken)))
	req.Host, req.Header = host, jsonHdr()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the dropped response arrived")
	}
	if got := f.tokenStatus(r0); got.Refresh != kommotest.TokenRecoverable || !got.SamePair || got.Access != kommotest.TokenLive {
		t.Errorf("after a lost response: %+v", got)
	}
	st, r1 := f.refreshWith(r0.RefreshToken) // the recovery
	if st != 200 {
		t.Fatal(st)
	}
	if got := f.tokenStatus(r1); got.Refresh != kommotest.TokenLive || got.Install != 1 {
		t.Errorf("recovered pair: %+v", got)
	}
	_, r2 := f.refreshWith(r1.RefreshToken)
	f.do("GET", host, "/api/v4/account", http.Header{"Authorization": {"Bearer " + r2.AccessToken}}, "")
	if st, _ := f.refreshWith(r1.RefreshToken); st != 401 { // burnt: r2 was used
		t.Errorf("stale refresh token: %d", st)
	}
	if got := f.tokenStatus(tokenResp{AccessToken: r2.AccessToken, RefreshToken: r1.RefreshToken}); got.Refresh != kommotest.TokenUsed || got.SamePair {
		t.Errorf("mixed pair: %+v", got)
	}
	f.clock.Advance(time.Minute)
	if got := f.tokenStatus(r2); got.Access != kommotest.TokenExpired || got.Refresh != kommotest.TokenLive {
		t.Errorf("after the access token's lifetime: %+v", got)
	}
	want := kommotest.Stats{Exchanges: 1, Refreshes: 3, DroppedResponses: 1, Recoveries: 1, BurntRefreshTokens: 1}
	if got := f.stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestClearFaults(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	f.sim.Inject(kommotest.Fault{Op: "account", Status: 503, Times: 5})
	req, _ := http.NewRequest("DELETE", f.srv.URL+"/_sim/fault", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || f.sim.PendingFaults() != 0 {
		t.Errorf("DELETE /_sim/fault: %d, %d faults left", resp.StatusCode, f.sim.PendingFaults())
	}
}
