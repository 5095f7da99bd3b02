package kommotest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// TestStateCarriesAcrossSimulators builds up every kind of state in one simulator, moves
// it to another through the control API (as to a simulator in another process) and checks
// that the second one answers every token, code and connection exactly as the first would.
func TestStateCarriesAcrossSimulators(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	f.sim.BindChannel(chanID, clientID)
	// Sources and pipelines: Kommo's own widget source at install, one put by hand.
	f.sim.SetWidget(clientID, "wabridge", false)
	sales := f.sim.AddPipeline(host, "Sales")
	f.sim.PutSource(host, clientID, kommotest.Source{Name: "chat", PipelineID: sales, ExternalID: "kchat01", Default: true})

	// A pair refreshed once: the first refresh token is spent, the second pair is current.
	spent := f.exchange()
	_, body := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", spent.RefreshToken))
	var current tokenResp
	if err := json.Unmarshal([]byte(body), &current); err != nil || current.RefreshToken == "" {
		t.Fatalf("refresh: %s", body)
	}
	// A connected channel.
	p := "/v2/origin/custom/" + chanID + "/connect"
	b := `{"account_id":"` + amojoID + `","title":"T","hook_api_version":"v2"}`
	if st, resp := f.do("POST", "amojo.kommo.com", p, signed("POST", p, b, chanKey, f.clock.Now()), b); st != 200 {
		t.Fatalf("connect: %d %s", st, resp)
	}
	// A pending code, and a long-lived token.
	pending := f.sim.IssueCode(host, clientID)
	longLived, err := f.sim.IssueLongLivedToken(host, clientID, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// An account that disabled the integration: its pair is revoked.
	f.sim.AddAccount("gone.kommo.com", 4242, "6c1d4f1e-0000-4000-8000-000000000001")
	goneCode := f.sim.IssueCode("gone.kommo.com", clientID)
	_, body = f.do("POST", "gone.kommo.com", "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", goneCode))
	var revoked tokenResp
	json.Unmarshal([]byte(body), &revoked)
	f.sim.RevokeAccess("gone.kommo.com", clientID)
	// An account that renamed its subdomain.
	f.sim.AddAccount("old.kommo.com", 777, "6c1d4f1e-0000-4000-8000-000000000002")
	oldCode := f.sim.IssueCode("old.kommo.com", clientID)
	_, body = f.do("POST", "old.kommo.com", "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", oldCode))
	var renamed tokenResp
	json.Unmarshal([]byte(body), &renamed)
	f.sim.Rename("old.kommo.com", "new.kommo.com")

	exported := f.sim.Export()
	resp, err := http.Get(f.srv.URL + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /_sim/state: %d %s", resp.StatusCode, data)
	}
	for _, v := range []string{spent.RefreshToken, current.AccessToken, pending, longLived, revoked.RefreshToken, chanKey, secret} {
		if !strings.Contains(string(data), v) {
			t.Fatalf("the exported state lacks a token, code or secret (%.12s…)", v)
		}
	}

	g := newFixture(t, kommotest.Options{}) // a second simulator, its clock where the first one's is
	req, _ := http.NewRequest(http.MethodPut, g.srv.URL+"/_sim/state", bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT /_sim/state: %d", resp.StatusCode)
	}
	if got, _ := json.Marshal(g.sim.Export()); !bytes.Equal(got, mustJSON(t, exported)) {
		t.Errorf("the imported state exports differently:\n got %s\nwant %s", got, mustJSON(t, exported))
	}

	refresh := func(host, rt string) (int, string) {
		return g.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", rt))
	}
	account := func(host, at string) int {
		st, _ := g.do("GET", host, "/api/v4/account", http.Header{"Authorization": {"Bearer " + at}}, "")
		return st
	}
	if st := account(host, current.AccessToken); st != 200 {
		t.Errorf("the current access token: %d", st)
	}
	if st := account(host, longLived); st != 200 {
		t.Errorf("the long-lived token: %d", st)
	}
	// A spent refresh token is a known, used one (401 revoked), not an unknown one (400).
	if st, body := refresh(host, spent.RefreshToken); st != 401 || !strings.Contains(body, "Token has been revoked") {
		t.Errorf("the spent refresh token: %d %s", st, body)
	}
	if st, body := refresh(host, current.RefreshToken); st != 200 {
		t.Errorf("the current refresh token: %d %s", st, body)
	}
	if st, body := refresh("gone.kommo.com", revoked.RefreshToken); st != 401 || !strings.Contains(body, "Token has been revoked") {
		t.Errorf("the revoked refresh token: %d %s", st, body)
	}
	if st := account("old.kommo.com", renamed.AccessToken); st != 404 {
		t.Errorf("the host the account left: %d", st)
	}
	if st := account("new.kommo.com", renamed.AccessToken); st != 200 {
		t.Errorf("the renamed account's token at its new host: %d", st)
	}
	if got, want := g.sim.Sources(host, clientID), f.sim.Sources(host, clientID); len(want) != 2 || !slices.Equal(got, want) {
		t.Errorf("sources %+v, want %+v", got, want)
	}
	if got := g.sim.AddPipeline(host, "Next"); got <= sales {
		t.Errorf("a new pipeline id %d reuses the id space (last %d)", got, sales)
	}
	if scope, ok := g.sim.Connection(chanID, amojoID); !ok || scope != chanID+"_"+amojoID {
		t.Errorf("the connection: %q %v", scope, ok)
	}
	exchange := func(code string) int {
		st, _ := g.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "authorization_code", "code", code))
		return st
	}
	if st := exchange(pending); st != 200 {
		t.Errorf("the pending code: %d", st)
	}
	if st := exchange(pending); st != 400 {
		t.Errorf("the pending code, a second time: %d", st)
	}
	// Expiry times carry over: a day later the current access token has expired.
	g.clock.Advance(25 * time.Hour)
	if st := account(host, current.AccessToken); st != 401 {
		t.Errorf("the current access token a day later: %d", st)
	}
	// Revoking access kills the long-lived token too.
	g.sim.RevokeAccess(host, clientID)
	if st := account(host, longLived); st != 401 {
		t.Errorf("the long-lived token after the revocation: %d", st)
	}
	// Leak scans of the second simulator know the imported secrets.
	for _, v := range []string{current.RefreshToken, longLived, chanKey, secret} {
		if !slices.Contains(g.sim.Secrets(), v) {
			t.Errorf("Secrets() lacks an imported secret (%.12s…)", v)
		}
	}
}

func TestImportRejectsInconsistentState(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	f.exchange()
	before := mustJSON(t, f.sim.Export())
	broken := f.sim.Export()
	broken.Grants[0].AccountID++ // a grant of an account the state does not hold
	if err := f.sim.Import(broken); err == nil {
		t.Error("a grant of an unknown account was imported")
	}
	broken = f.sim.Export()
	broken.Grants[0].Next = "def50200-not-a-token"
	if err := f.sim.Import(broken); err == nil {
		t.Error("a grant with an unknown successor was imported")
	}
	if err := f.sim.Import(kommotest.State{}); err == nil {
		t.Error("a state without a JWT key was imported")
	}
	if after := mustJSON(t, f.sim.Export()); !bytes.Equal(before, after) {
		t.Error("a failed import changed the state")
	}
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/_sim/state", strings.NewReader(`{"jwtKey":"AA==","unknown":1}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("PUT /_sim/state with an unknown field: %d", resp.StatusCode)
	}
}

func TestLongLivedTokenLifetime(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	for _, d := range []time.Duration{time.Hour, 6 * 365 * 24 * time.Hour} {
		if _, err := f.sim.IssueLongLivedToken(host, clientID, d); err == nil {
			t.Errorf("a long-lived token for %s", d)
		}
	}
	tok, err := f.sim.IssueLongLivedToken(host, clientID, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// No refresh token: refreshing with the access token is refused like any unknown token.
	if st, _ := f.do("POST", host, "/oauth2/access_token", jsonHdr(), tokenBody("grant_type", "refresh_token", "refresh_token", tok)); st != 400 {
		t.Errorf("refresh with a long-lived token: %d", st)
	}
	f.clock.Advance(49 * time.Hour)
	if st, _ := f.do("GET", host, "/api/v4/account", http.Header{"Authorization": {"Bearer " + tok}}, ""); st != 401 {
		t.Errorf("an expired long-lived token: %d", st)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
