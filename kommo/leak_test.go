package kommo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// TestErrorsNeverLeakSecrets drives every error path with distinctive secrets and checks
// that no code, token, client or channel secret or signature shows up in any rendering of
// any error.
func TestErrorsNeverLeakSecrets(t *testing.T) {
	e := newEnv(t, kommotest.Options{TokenLifetime: time.Hour}, kommo.Options{})
	ctx := context.Background()
	var errs []error
	add := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		errs = append(errs, err)
	}
	tok := e.install()
	wrongSecret := e.app
	wrongSecret.ClientSecret = "WRONGSECRET" + clientSecret
	wrongRedirect := e.app
	wrongRedirect.RedirectURI += "?secret=" + clientSecret
	code := e.sim.IssueCode(host, clientID)

	add("wrong secret", errOf(e.c.ExchangeCode(ctx, host, wrongSecret, code)))
	add("wrong redirect", errOf(e.c.ExchangeCode(ctx, host, wrongRedirect, code)))
	if _, err := e.c.ExchangeCode(ctx, host, e.app, code); err != nil {
		t.Fatal(err)
	}
	add("used code", errOf(e.c.ExchangeCode(ctx, host, e.app, code)))
	expired := e.sim.IssueCode(host, clientID)
	e.clock.Advance(21 * time.Minute)
	add("expired code", errOf(e.c.ExchangeCode(ctx, host, e.app, expired)))
	add("unknown code", errOf(e.c.ExchangeCode(ctx, host, e.app, "def50200"+clientSecret)))
	next, err := e.c.Refresh(ctx, host, e.app, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	add("replay", errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)))
	add("refresh wrong secret", errOf(e.c.Refresh(ctx, host, wrongSecret, next.RefreshToken)))
	add("unknown refresh", errOf(e.c.Refresh(ctx, host, e.app, "def50200"+channelSecret)))
	add("subdomain spent token", errOf(e.c.CurrentSubdomain(ctx, "api-c.kommo.com", tok.RefreshToken)))
	add("bearer unknown", errOf(e.c.Account(ctx, host, clientSecret)))
	add("host carrying a secret", errOf(e.c.Refresh(ctx, host+"/"+clientSecret, e.app, next.RefreshToken)))
	add("host carrying a token", errOf(e.c.Account(ctx, next.AccessToken, next.AccessToken)))
	add("apiDomain carrying a token", errOf(e.c.CurrentSubdomain(ctx, next.RefreshToken, next.RefreshToken)))

	badCh := kommo.Channel{ID: vecChannel, Secret: "BADCHANNELSECRET" + channelSecret}
	add("connect bad secret", errOf(e.c.Connect(ctx, host, badCh, kommo.ConnectRequest{AmojoID: vecAmojoID, Title: clientSecret})))
	add("disconnect bad secret", e.c.Disconnect(ctx, host, badCh, vecAmojoID))
	add("unknown channel", errOf(e.c.Connect(ctx, host, kommo.Channel{ID: "abc", Secret: channelSecret}, kommo.ConnectRequest{AmojoID: vecAmojoID})))
	add("unknown amojo", errOf(e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: channelSecret})))
	add("channel id carrying a secret", errOf(e.c.Connect(ctx, host, kommo.Channel{ID: channelSecret + "/x", Secret: channelSecret}, kommo.ConnectRequest{AmojoID: vecAmojoID})))

	for _, f := range []kommotest.Fault{
		{Status: 429, RetryAfter: 2 * time.Second},
		{Status: 403, HTMLBlocked: true},
		{Status: 500}, {Status: 502}, {Status: 401, Hint: "Token has been revoked"},
		{DropResponse: true},
	} {
		e.sim.Inject(f)
		add(fmt.Sprintf("fault %+v", f), errOf(e.c.Refresh(ctx, host, e.app, next.RefreshToken)))
	}
	e.sim.Inject(kommotest.Fault{Latency: time.Hour})
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	add("timeout", errOf(e.c.Refresh(tctx, host, e.app, next.RefreshToken)))
	cancel()

	e.sim.Rename(host, "acme2.kommo.com")
	add("renamed", errOf(e.c.Refresh(ctx, host, e.app, next.RefreshToken)))
	q := e.sim.RevokeAccess("acme2.kommo.com", clientID)
	add("revoked", errOf(e.c.Refresh(ctx, "acme2.kommo.com", e.app, next.RefreshToken)))
	add("revoked bearer", errOf(e.c.Account(ctx, "acme2.kommo.com", next.AccessToken)))

	// A hostile or buggy server that echoes the request into every field, with every status.
	statuses := []int{400, 401, 403, 404, 429, 500, 200, 307}
	var n atomic.Int32
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		echo := string(b) + r.Header.Get("Authorization") + r.Header.Get("X-Refresh-Token") + r.Header.Get("X-Signature")
		status := statuses[int(n.Add(1)-1)%len(statuses)]
		w.Header().Set("Retry-After", echo)
		w.Header().Set("Location", "https://evil.io/?"+echo)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"title": echo, "detail": echo, "hint": echo, "error_type": echo, "retry_after": echo})
	}))
	defer hostile.Close()
	hc, err := kommo.NewClient(kommo.Options{Endpoint: hostile.URL, QPS: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	for range statuses {
		add("hostile subdomain", errOf(hc.CurrentSubdomain(ctx, "api-c.kommo.com", next.RefreshToken)))
		add("hostile refresh", errOf(hc.Refresh(ctx, host, e.app, next.RefreshToken)))
		add("hostile exchange", errOf(hc.ExchangeCode(ctx, host, e.app, code)))
		add("hostile account", errOf(hc.Account(ctx, host, next.AccessToken)))
		add("hostile connect", errOf(hc.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID, Title: clientSecret})))
		if err := hc.Disconnect(ctx, host, e.ch, vecAmojoID); err != nil { // 200 is a success here
			errs = append(errs, err)
		}
	}

	// The package's other error sources.
	add("claims", errOf(kommo.ParseClaims(clientSecret+"."+clientSecret+"!.x")))
	add("state", kommo.VerifyState([]byte(clientSecret), "v1.1."+channelSecret[:20]+"."+strings.Repeat("0", 64), t0))
	h := http.Header{"Content-Type": {"application/json"}, "Date": {t0.Format(kommo.ChatDateLayout)}, "Content-Md5": {channelSecret}, "X-Signature": {channelSecret}}
	add("verify chat", kommo.VerifyChatRequest(channelSecret, "POST", "/x", []byte(clientSecret), h, t0, time.Minute))
	add("referer", errOf(kommo.ParseReferer(clientSecret+".evil.io", nil)))

	secrets := append(e.sim.Secrets(), clientSecret, channelSecret, code, expired,
		tok.AccessToken, tok.RefreshToken, next.AccessToken, next.RefreshToken, q.Get("signature"))
	// Make sure the scan is not vacuous: the simulator knew what we used.
	for _, s := range []string{clientSecret, channelSecret, code, tok.RefreshToken, next.AccessToken, q.Get("signature")} {
		if !slices.Contains(e.sim.Secrets(), s) {
			t.Fatalf("simulator does not list a secret it issued or knew")
		}
	}
	if len(errs) < 40 {
		t.Fatalf("only %d error paths driven", len(errs))
	}
	for _, err := range errs {
		renderings := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%s", err)}
		if ke, ok := err.(*kommo.Error); ok {
			renderings = append(renderings, fmt.Sprintf("%+v", *ke), fmt.Sprintf("%#v", *ke))
		}
		for _, r := range renderings {
			for _, s := range secrets {
				// Short fragments are not secrets; everything issued is far longer.
				if len(s) >= 16 && strings.Contains(r, s) {
					t.Errorf("error %q leaks a secret (%.6s…)", r, s)
				}
			}
			if strings.Contains(r, "127.0.0.1") || strings.Contains(r, "evil.io") {
				t.Errorf("error %q leaks a URL", r)
			}
		}
	}
}
