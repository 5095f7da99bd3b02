package kommo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

const (
	host        = "acme.kommo.com"
	clientID    = "0b2c5e4e-7d1a-4c1e-9a55-1d0f9c3e2a11"
	redirectURI = "https://operator.example.com/kommo/default/wa-bridge/redirect"
)

// Distinctive values, so a leak is unmistakable.
var (
	clientSecret  = "CLIENTSECRET" + strings.Repeat("q", 52)
	channelSecret = "cafebabe" + strings.Repeat("7", 32)
	t0            = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	sim   *kommotest.Simulator
	srv   *httptest.Server
	clock *fakeClock
	c     *kommo.Client
	app   kommo.App
	ch    kommo.Channel
}

// newEnv starts a simulator with one integration, account and channel, and a client
// pointed at it; both share one fake clock.
func newEnv(t *testing.T, so kommotest.Options, co kommo.Options) *env {
	t.Helper()
	clock := &fakeClock{t: t0}
	so.Now = clock.Now
	if so.QPS == 0 {
		so.QPS = -1 // the rate limit has its own tests
	}
	sim, srv := kommotest.NewServer(so)
	t.Cleanup(srv.Close)
	sim.AddIntegration(clientID, clientSecret, redirectURI)
	sim.AddAccount(host, 32720107, vecAmojoID)
	sim.AddChannel(vecChannel, channelSecret)
	co.Endpoint = srv.URL
	if co.Now == nil {
		co.Now = clock.Now
	}
	if co.QPS == 0 {
		co.QPS = 1e6 // the limiter has its own tests; keep these fast
	}
	c, err := kommo.NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		t: t, sim: sim, srv: srv, clock: clock, c: c,
		app: kommo.App{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI},
		ch:  kommo.Channel{ID: vecChannel, Secret: channelSecret},
	}
}

func (e *env) install() *kommo.Token {
	e.t.Helper()
	tok, err := e.c.ExchangeCode(context.Background(), host, e.app, e.sim.IssueCode(host, clientID))
	if err != nil {
		e.t.Fatalf("ExchangeCode: %v", err)
	}
	return tok
}

// wantKind fails unless err is a *kommo.Error of kind k with the given status.
func wantKind(t *testing.T, err error, k kommo.Kind, status int) *kommo.Error {
	t.Helper()
	var ke *kommo.Error
	if !errors.As(err, &ke) {
		t.Fatalf("got %v (%T), want a *kommo.Error of kind %s", err, err, k)
	}
	if ke.Kind != k || ke.Status != status {
		t.Fatalf("got %v (kind %s, status %d), want kind %s, status %d", err, ke.Kind, ke.Status, k, status)
	}
	return ke
}

func TestExchangeAndAccount(t *testing.T) {
	e := newEnv(t, kommotest.Options{TokenLifetime: time.Hour}, kommo.Options{})
	tok := e.install()
	if tok.ExpiresIn != time.Hour || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("expiry: in %s at %s, want 1h at %s", tok.ExpiresIn, tok.ExpiresAt, t0.Add(time.Hour))
	}
	if !strings.HasPrefix(tok.RefreshToken, "def50200") || tok.AccessToken == "" {
		t.Errorf("unexpected token shape")
	}
	cl, err := kommo.ParseClaims(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := kommo.Claims{AccountID: 32720107, BaseDomain: "kommo.com", APIDomain: "api-c.kommo.com", Audience: clientID, ExpiresAt: t0.Add(time.Hour)}
	if *cl != want {
		t.Errorf("claims %+v, want %+v", *cl, want)
	}
	acct, err := e.c.Account(context.Background(), host, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if *acct != (kommo.Account{ID: 32720107, AmojoID: vecAmojoID, Subdomain: "acme"}) {
		t.Errorf("account %+v", *acct)
	}
	// Every request went to the endpoint with the Kommo host in Host.
	for _, c := range e.sim.Calls() {
		if c.Host != host || c.Status != 200 {
			t.Errorf("call %+v", c)
		}
	}
	if n := e.sim.CallCount("exchange", host); n != 1 {
		t.Errorf("exchange calls %d", n)
	}
}

func TestExchangeErrors(t *testing.T) {
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	ctx := context.Background()

	code := e.sim.IssueCode(host, clientID)
	bad := e.app
	bad.ClientSecret = "wrong-" + clientSecret
	wantKind(t, errOf(e.c.ExchangeCode(ctx, host, bad, code)), kommo.KindInvalidClient, 401)
	bad = e.app
	bad.RedirectURI += "/"
	wantKind(t, errOf(e.c.ExchangeCode(ctx, host, bad, code)), kommo.KindInvalidClient, 401)
	// The failed attempts did not burn the code.
	if _, err := e.c.ExchangeCode(ctx, host, e.app, code); err != nil {
		t.Fatalf("first valid use: %v", err)
	}
	ke := wantKind(t, errOf(e.c.ExchangeCode(ctx, host, e.app, code)), kommo.KindInvalidCode, 400)
	if !kommo.IsTerminal(ke) {
		t.Error("a used code must be terminal")
	}

	expired := e.sim.IssueCode(host, clientID)
	e.clock.Advance(20*time.Minute + time.Second)
	ke = wantKind(t, errOf(e.c.ExchangeCode(ctx, host, e.app, expired)), kommo.KindInvalidCode, 400)
	if ke.Hint != "Authorization code has expired" {
		t.Errorf("hint %q", ke.Hint)
	}

	// A code is bound to its account host.
	e.sim.AddAccount("other.kommo.com", 5, "c0ffee00-0000-4000-8000-000000000005")
	other := e.sim.IssueCode("other.kommo.com", clientID)
	wantKind(t, errOf(e.c.ExchangeCode(ctx, host, e.app, other)), kommo.KindInvalidCode, 400)
	wantKind(t, errOf(e.c.ExchangeCode(ctx, host, e.app, "def50200nonsense")), kommo.KindInvalidCode, 400)

	// Refused before any request.
	wantKind(t, errOf(e.c.ExchangeCode(ctx, host, e.app, "")), kommo.KindBadRequest, 0)
	wantKind(t, errOf(e.c.ExchangeCode(ctx, "acme.kommo.com/x", e.app, code)), kommo.KindBadRequest, 0)
}

func errOf[T any](_ T, err error) error { return err }

func TestRefreshRotation(t *testing.T) {
	e := newEnv(t, kommotest.Options{TokenLifetime: time.Hour}, kommo.Options{})
	ctx := context.Background()
	tok := e.install()
	e.clock.Advance(40 * time.Minute)
	next, err := e.c.Refresh(ctx, host, e.app, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate the pair")
	}
	if !next.ExpiresAt.Equal(t0.Add(40*time.Minute + time.Hour)) {
		t.Errorf("ExpiresAt %s", next.ExpiresAt)
	}
	if e.sim.UsedRefreshTokenReplays() != 0 {
		t.Fatal("replay counted for a fresh token")
	}
	// Strictly single-use: the old refresh token is dead, and the replay is counted.
	ke := wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindTokenRevoked, 401)
	if ke.Hint != "Token has been revoked" || !kommo.IsTerminal(ke) {
		t.Errorf("got %v", ke)
	}
	if n := e.sim.UsedRefreshTokenReplays(); n != 1 {
		t.Errorf("replays %d, want 1", n)
	}
	// The new pair works.
	if _, err := e.c.Account(ctx, host, next.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Refresh(ctx, host, e.app, next.RefreshToken); err != nil {
		t.Fatal(err)
	}
	bad := e.app
	bad.ClientSecret = "nope"
	wantKind(t, errOf(e.c.Refresh(ctx, host, bad, next.RefreshToken)), kommo.KindInvalidClient, 401)
	wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, "def50200garbage")), kommo.KindTokenRevoked, 400)
}

func TestAccessTokenExpiry(t *testing.T) {
	e := newEnv(t, kommotest.Options{TokenLifetime: 30 * time.Second}, kommo.Options{})
	tok := e.install()
	e.clock.Advance(30 * time.Second)
	ke := wantKind(t, errOf(e.c.Account(context.Background(), host, tok.AccessToken)), kommo.KindUnauthorized, 401)
	if kommo.IsTerminal(ke) {
		t.Error("an expired access token is fixed by a refresh, not terminal")
	}
	wantKind(t, errOf(e.c.Account(context.Background(), host, "not-a-token")), kommo.KindUnauthorized, 401)
}

func TestRevokeAccess(t *testing.T) {
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	ctx := context.Background()
	tok := e.install()
	if _, err := e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID, Title: "WA"}); err != nil {
		t.Fatal(err)
	}
	q := e.sim.RevokeAccess(host, clientID)
	if q.Get("client_uuid") != clientID || q.Get("account_id") != "32720107" ||
		!kommo.VerifyRevokeSignature(clientSecret, q.Get("client_uuid"), q.Get("account_id"), q.Get("signature")) {
		t.Fatalf("revoke hook query %v does not verify", q)
	}
	if _, ok := e.sim.Connection(vecChannel, vecAmojoID); ok {
		t.Error("revocation left the channel connected")
	}
	ke := wantKind(t, errOf(e.c.Account(ctx, host, tok.AccessToken)), kommo.KindUnauthorized, 401)
	if ke.Hint != "Token has been revoked" {
		t.Errorf("hint %q", ke.Hint)
	}
	wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindTokenRevoked, 401)
	// A reinstall works again.
	tok2 := e.install()
	if _, err := e.c.Account(ctx, host, tok2.AccessToken); err != nil {
		t.Fatal(err)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	ctx := context.Background()
	tok := e.install()

	e.sim.Inject(kommotest.Fault{Op: "account", Status: 429, RetryAfter: 3 * time.Second})
	ke := wantKind(t, errOf(e.c.Account(ctx, host, tok.AccessToken)), kommo.KindRateLimited, 429)
	if d, ok := kommo.RetryAfterOf(ke); !ok || d != 3*time.Second {
		t.Errorf("RetryAfterOf = %s, %v", d, ok)
	}

	for _, status := range []int{500, 502, 503} {
		e.sim.Inject(kommotest.Fault{Op: "refresh", Host: host, Status: status})
		ke = wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindTransient, status)
		if kommo.IsTerminal(ke) {
			t.Error("5xx is not terminal")
		}
	}
	// Faults hit only matching requests, and only Times times.
	e.sim.Inject(kommotest.Fault{Op: "connect", Status: 500, Times: 2})
	e.sim.Inject(kommotest.Fault{Host: "other.kommo.com", Status: 500})
	if _, err := e.c.Account(ctx, host, tok.AccessToken); err != nil {
		t.Fatalf("a connect fault hit the account call: %v", err)
	}
	for i := 0; i < 2; i++ {
		wantKind(t, errOf(e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID})), kommo.KindTransient, 500)
	}
	if _, err := e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID}); err != nil {
		t.Fatalf("third connect: %v", err)
	}
	// None of those faults consumed the refresh token.
	if _, err := e.c.Refresh(ctx, host, e.app, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// Last: a block holds every later call of this client.
	e.sim.Inject(kommotest.Fault{Op: "refresh", Status: 403, HTMLBlocked: true})
	ke = wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindBlocked, 403)
	if kommo.IsTerminal(ke) {
		t.Error("a blocked IP is not terminal")
	}

}

func TestTransportErrors(t *testing.T) {
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	tok := e.install()

	e.sim.Inject(kommotest.Fault{Op: "account", Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := errOf(e.c.Account(ctx, host, tok.AccessToken))
	wantKind(t, err, kommo.KindTransient, 0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "/api/v4") {
		t.Errorf("error carries the URL: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = errOf(e.c.Account(ctx, host, tok.AccessToken))
	if !errors.Is(err, context.Canceled) || kommo.KindOf(err) != kommo.KindTransient {
		t.Errorf("canceled: %v", err)
	}

	// Connection refused.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c, err := kommo.NewClient(kommo.Options{Endpoint: dead.URL})
	if err != nil {
		t.Fatal(err)
	}
	err = errOf(c.Refresh(context.Background(), host, e.app, tok.RefreshToken))
	wantKind(t, err, kommo.KindTransient, 0)
	if got, want := err.Error(), "kommo refresh at acme.kommo.com: Transient: connection error"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLostRefreshResponse(t *testing.T) {
	for _, grace := range []bool{true, false} {
		t.Run(fmt.Sprintf("grace=%v", grace), func(t *testing.T) {
			e := newEnv(t, kommotest.Options{RefreshGrace: grace}, kommo.Options{})
			ctx := context.Background()
			tok := e.install()
			e.sim.Inject(kommotest.Fault{Op: "refresh", DropResponse: true})
			wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindTransient, 0)
			calls := e.sim.Calls()
			if last := calls[len(calls)-1]; !last.Dropped || last.Status != 200 || last.Op != "refresh" {
				t.Fatalf("the dropped refresh was not applied: %+v", last)
			}
			// Recovery: the only way is to present the old refresh token again.
			got, err := e.c.Refresh(ctx, host, e.app, tok.RefreshToken)
			if e.sim.UsedRefreshTokenReplays() != 1 {
				t.Errorf("replays %d, want 1", e.sim.UsedRefreshTokenReplays())
			}
			if !grace {
				wantKind(t, err, kommo.KindTokenRevoked, 401)
				return
			}
			if err != nil {
				t.Fatalf("recovery under grace: %v", err)
			}
			if _, err := e.c.Account(ctx, host, got.AccessToken); err != nil {
				t.Fatal(err)
			}
			// Once the new pair is used, the old refresh token is spent for good.
			wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindTokenRevoked, 401)
			if _, err := e.c.Refresh(ctx, host, e.app, got.RefreshToken); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRenamedSubdomain(t *testing.T) {
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	ctx := context.Background()
	tok := e.install()
	e.sim.Rename(host, "acme2.kommo.com")

	wantKind(t, errOf(e.c.Refresh(ctx, host, e.app, tok.RefreshToken)), kommo.KindNotFound, 404)
	wantKind(t, errOf(e.c.Account(ctx, host, tok.AccessToken)), kommo.KindNotFound, 404)
	cl, err := kommo.ParseClaims(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := e.c.CurrentSubdomain(ctx, cl.APIDomain, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if sd.Host() != "acme2.kommo.com" || sd.ID != 32720107 || sd.Subdomain != "acme2" {
		t.Fatalf("subdomain %+v host %s", *sd, sd.Host())
	}
	if calls := e.sim.Calls(); calls[len(calls)-1].Host != "api-c.kommo.com" {
		t.Errorf("subdomain lookup went to %s", calls[len(calls)-1].Host)
	}
	// The lookup did not spend the refresh token.
	if _, err := e.c.Refresh(ctx, sd.Host(), e.app, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	wantKind(t, errOf(e.c.CurrentSubdomain(ctx, cl.APIDomain, tok.RefreshToken)), kommo.KindUnauthorized, 401)
	wantKind(t, errOf(e.c.CurrentSubdomain(ctx, cl.APIDomain, "")), kommo.KindBadRequest, 0)
}

func TestSubdomainHost(t *testing.T) {
	tests := []struct {
		s    kommo.Subdomain
		want string
	}{
		{kommo.Subdomain{Subdomain: "acme", Domain: "acme.amocrm.ru", TopLevelDomain: "ru"}, "acme.amocrm.ru"},
		{kommo.Subdomain{Subdomain: "acme", Domain: "kommo.com", TopLevelDomain: "com"}, "acme.kommo.com"},
		{kommo.Subdomain{Subdomain: "Acme", Domain: "ACME.kommo.com."}, "acme.kommo.com"},
		{kommo.Subdomain{Subdomain: "acme"}, ""},
	}
	for _, tc := range tests {
		if got := tc.s.Host(); got != tc.want {
			t.Errorf("%+v.Host() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestConnectDisconnect(t *testing.T) {
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	ctx := context.Background()
	req := kommo.ConnectRequest{AmojoID: vecAmojoID, Title: "ChatsIntegration"}
	conn, err := e.c.Connect(ctx, host, e.ch, req)
	if err != nil {
		t.Fatal(err)
	}
	want := kommo.Connection{ScopeID: vecScopeID, AmojoID: vecAmojoID, Title: "ChatsIntegration", HookAPIVersion: "v2"}
	if *conn != want {
		t.Fatalf("connection %+v, want %+v", *conn, want)
	}
	if scope, ok := e.sim.Connection(vecChannel, vecAmojoID); !ok || scope != vecScopeID {
		t.Fatalf("sim connection %q %v", scope, ok)
	}
	// Idempotent, as it is called after every install.
	if again, err := e.c.Connect(ctx, host, e.ch, req); err != nil || *again != want {
		t.Fatalf("repeat connect: %+v, %v", again, err)
	}
	if calls := e.sim.Calls(); calls[0].Host != "amojo.kommo.com" {
		t.Errorf("connect went to %s", calls[0].Host)
	}
	if err := e.c.Disconnect(ctx, host, e.ch, vecAmojoID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sim.Connection(vecChannel, vecAmojoID); ok {
		t.Fatal("still connected")
	}
	if err := e.c.Disconnect(ctx, host, e.ch, vecAmojoID); err != nil {
		t.Fatalf("repeat disconnect: %v", err)
	}

	bad := kommo.Channel{ID: vecChannel, Secret: strings.Repeat("0", 40)}
	ke := wantKind(t, errOf(e.c.Connect(ctx, host, bad, req)), kommo.KindInvalidSignature, 403)
	if ke.Hint != "ORIGIN_INVALID_SIGNATURE" || !kommo.IsTerminal(ke) {
		t.Errorf("got %v", ke)
	}
	wantKind(t, e.c.Disconnect(ctx, host, bad, vecAmojoID), kommo.KindInvalidSignature, 403)
	unknown := kommo.Channel{ID: "00000000-0000-4000-8000-000000000000", Secret: channelSecret}
	ke = wantKind(t, errOf(e.c.Connect(ctx, host, unknown, req)), kommo.KindNotFound, 404)
	if ke.Hint != "ORIGIN_NOT_REGISTERED" {
		t.Errorf("hint %q", ke.Hint)
	}
	// Unknown amojo account.
	wantKind(t, errOf(e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: "nope"})), kommo.KindBadRequest, 400)
	// Refused before any request.
	wantKind(t, errOf(e.c.Connect(ctx, host, kommo.Channel{ID: "../x", Secret: "s"}, req)), kommo.KindBadRequest, 0)
	wantKind(t, errOf(e.c.Connect(ctx, host, kommo.Channel{ID: vecChannel}, req)), kommo.KindBadRequest, 0)
	wantKind(t, errOf(e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{})), kommo.KindBadRequest, 0)
}

func TestConnectClockSkew(t *testing.T) {
	clock := &fakeClock{t: t0.Add(16 * time.Minute)}
	e := newEnv(t, kommotest.Options{}, kommo.Options{Now: clock.Now})
	_, err := e.c.Connect(context.Background(), host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID})
	wantKind(t, err, kommo.KindInvalidSignature, 403)
	clock.Advance(-2 * time.Minute)
	if _, err := e.c.Connect(context.Background(), host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID}); err != nil {
		t.Fatalf("14 minutes of skew: %v", err)
	}
}

// TestConnectVectorBytes proves Connect sends exactly Kommo's published example.
func TestConnectVectorBytes(t *testing.T) {
	type seen struct {
		host, method, path, body string
		h                        http.Header
	}
	var (
		mu  sync.Mutex
		got []seen
	)
	dates := []time.Time{time.Date(2021, 12, 15, 23, 12, 55, 0, time.UTC), time.Date(2021, 12, 15, 23, 59, 28, 0, time.UTC)}
	i := 0
	sim := kommotest.New(kommotest.Options{Now: func() time.Time { return dates[i].Add(time.Minute) }})
	sim.AddAccount("example.kommo.com", 1, vecAmojoID)
	sim.AddChannel(vecChannel, vecSecret)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Host, r.Method, r.URL.RequestURI(), string(b), r.Header.Clone()})
		mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := kommo.NewClient(kommo.Options{Endpoint: srv.URL, Now: func() time.Time { return dates[i] }})
	if err != nil {
		t.Fatal(err)
	}
	ch := kommo.Channel{ID: vecChannel, Secret: vecSecret}
	conn, err := c.Connect(context.Background(), "example.kommo.com", ch,
		kommo.ConnectRequest{AmojoID: vecAmojoID, Title: "ChatsIntegration", HookAPIVersion: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	if conn.ScopeID != vecScopeID {
		t.Errorf("scope %q", conn.ScopeID)
	}
	i = 1
	if err := c.Disconnect(context.Background(), "example.kommo.com", ch, vecAmojoID); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{"amojo.kommo.com", "POST", vecConnPath, vecConnBody, nil},
		{"amojo.kommo.com", "DELETE", vecDiscPath, vecDiscBody, nil},
	}
	wantHdr := [][3]string{{vecConnMD5, vecConnDate, vecConnSig}, {vecDiscMD5, vecDiscDate, vecDiscSig}}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	for k := range want {
		g, w := got[k], want[k]
		if g.host != w.host || g.method != w.method || g.path != w.path || g.body != w.body {
			t.Errorf("request %d: %s %s %s %s; want %s %s %s %s", k, g.host, g.method, g.path, g.body, w.host, w.method, w.path, w.body)
		}
		hdr := [3]string{g.h.Get("Content-MD5"), g.h.Get("Date"), g.h.Get("X-Signature")}
		if hdr != wantHdr[k] || g.h.Get("Content-Type") != "application/json" {
			t.Errorf("request %d headers %v %q, want %v", k, hdr, g.h.Get("Content-Type"), wantHdr[k])
		}
	}
}

// TestHTTPSGuard: without Endpoint, the client secret only ever travels to https://host.
func TestHTTPSGuard(t *testing.T) {
	var seen []*url.URL
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL)
		body := `{"token_type":"Bearer","expires_in":86400,"server_time":1700000000,"access_token":"a.b.c","refresh_token":"def50200x"}`
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})
	c, err := kommo.NewClient(kommo.Options{HTTPClient: &http.Client{Transport: rt}, QPS: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	app := kommo.App{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	tok, err := c.ExchangeCode(context.Background(), host, app, "def50200code")
	if err != nil {
		t.Fatal(err)
	}
	if !tok.ExpiresAt.Equal(time.Unix(1700000000+86400, 0)) {
		t.Errorf("ExpiresAt from server_time: %s", tok.ExpiresAt)
	}
	if _, err := c.Refresh(context.Background(), host, app, "def50200r"); err != nil {
		t.Fatal(err)
	}
	for _, u := range seen {
		if u.Scheme != "https" || u.Host != host || u.Path != "/oauth2/access_token" {
			t.Errorf("secret sent to %s", u)
		}
	}
	if len(seen) != 2 {
		t.Errorf("%d requests", len(seen))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestNoRedirects: a redirect could carry the client secret elsewhere; it is never followed.
func TestNoRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	// Even a caller's client with its own redirect policy.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
	c, err := kommo.NewClient(kommo.Options{Endpoint: srv.URL, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	app := kommo.App{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	wantKind(t, errOf(c.ExchangeCode(context.Background(), host, app, "def50200code")), kommo.KindTransient, 307)
	if elsewhere.Load() != 0 {
		t.Fatal("redirect followed")
	}
	if hc.CheckRedirect == nil {
		t.Fatal("caller's client modified")
	}
}

func TestMalformedSuccess(t *testing.T) {
	bodies := map[string]string{
		"html":          "<html>maintenance</html>",
		"no refresh":    `{"token_type":"Bearer","expires_in":86400,"access_token":"a"}`,
		"zero lifetime": `{"token_type":"Bearer","expires_in":0,"access_token":"a","refresh_token":"r"}`,
		"other type":    `{"token_type":"MAC","expires_in":5,"access_token":"a","refresh_token":"r"}`,
		"bad number":    `{"token_type":"Bearer","expires_in":"soon","access_token":"a","refresh_token":"r"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
			defer srv.Close()
			c, _ := kommo.NewClient(kommo.Options{Endpoint: srv.URL})
			app := kommo.App{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
			ke := wantKind(t, errOf(c.Refresh(context.Background(), host, app, "def50200r")), kommo.KindTransient, 200)
			if !strings.Contains(ke.Error(), "malformed response") {
				t.Errorf("got %v", ke)
			}
		})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":5,"subdomain":"acme"}`)
	}))
	defer srv.Close()
	c, _ := kommo.NewClient(kommo.Options{Endpoint: srv.URL})
	wantKind(t, errOf(c.Account(context.Background(), host, "tok")), kommo.KindTransient, 200)
	wantKind(t, errOf(c.CurrentSubdomain(context.Background(), "api-c.kommo.com", "tok")), kommo.KindTransient, 200)
	wantKind(t, errOf(c.Connect(context.Background(), host, kommo.Channel{ID: "c", Secret: "s"}, kommo.ConnectRequest{AmojoID: "a"})), kommo.KindTransient, 200)
}

func TestObserve(t *testing.T) {
	type obs struct {
		api, op string
		code    int
	}
	var got []obs
	e := newEnv(t, kommotest.Options{}, kommo.Options{Observe: func(api, op string, code int, d time.Duration) {
		if d < 0 {
			t.Errorf("negative duration")
		}
		got = append(got, obs{api, op, code})
	}})
	ctx := context.Background()
	tok := e.install()
	e.c.Account(ctx, host, tok.AccessToken)
	e.c.Refresh(ctx, host, e.app, "def50200nope")
	e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID})
	e.c.Disconnect(ctx, host, e.ch, vecAmojoID)
	e.c.CurrentSubdomain(ctx, "api-c.kommo.com", tok.RefreshToken)
	e.sim.Inject(kommotest.Fault{Op: "connect", DropResponse: true})
	e.c.Connect(ctx, host, e.ch, kommo.ConnectRequest{AmojoID: vecAmojoID})
	want := []obs{
		{"oauth", "exchange", 200}, {"account", "account", 200}, {"oauth", "refresh", 400},
		{"chats", "connect", 200}, {"chats", "disconnect", 200}, {"oauth", "subdomain", 200},
		{"chats", "connect", 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %v\nwant     %v", got, want)
	}
}

func TestNewClientOptions(t *testing.T) {
	for _, ep := range []string{"ftp://x", "127.0.0.1:8443", "http://", "http://u:p@h", "http://h/path", "http://h?q=1", "http://h#f", "://"} {
		if _, err := kommo.NewClient(kommo.Options{Endpoint: ep}); err == nil {
			t.Errorf("Endpoint %q accepted", ep)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("error echoes the endpoint: %v", err)
		}
	}
	for _, ep := range []string{"", "http://127.0.0.1:8443", "https://sim.local/", "http://[::1]:1"} {
		if _, err := kommo.NewClient(kommo.Options{Endpoint: ep}); err != nil {
			t.Errorf("Endpoint %q: %v", ep, err)
		}
	}
	if _, err := kommo.NewClient(kommo.Options{QPS: -1}); err == nil {
		t.Error("negative QPS accepted")
	}
	if _, err := kommo.NewClient(kommo.Options{Burst: -1}); err == nil {
		t.Error("negative Burst accepted")
	}
}

func TestSecretsRedactedWhenPrinted(t *testing.T) {
	tok := kommo.Token{AccessToken: "ACCESS-xyz", RefreshToken: "REFRESH-xyz"}
	app := kommo.App{ClientID: "id", ClientSecret: clientSecret, RedirectURI: "r"}
	ch := kommo.Channel{ID: "c", Secret: channelSecret}
	for _, v := range []any{tok, &tok, app, &app, ch, &ch, struct{ T kommo.Token }{tok}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			s := fmt.Sprintf(verb, v)
			for _, secret := range []string{"ACCESS-xyz", "REFRESH-xyz", clientSecret, channelSecret} {
				if strings.Contains(s, secret) {
					t.Errorf("%s of %T leaks: %s", verb, v, s)
				}
			}
		}
	}
}
