package kommo

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// App is an integration's OAuth credentials as registered in Kommo.
type App struct {
	ClientID     string
	ClientSecret string
	RedirectURI  string // must equal the registered one exactly, trailing slash included
}

// String redacts the secret, so an App is safe to print by accident.
func (a App) String() string {
	return fmt.Sprintf("{ClientID:%s ClientSecret:REDACTED RedirectURI:%s}", a.ClientID, a.RedirectURI)
}

// GoString redacts the secret for %#v.
func (a App) GoString() string {
	return fmt.Sprintf("kommo.App{ClientID:%q, ClientSecret:\"REDACTED\", RedirectURI:%q}", a.ClientID, a.RedirectURI)
}

// Token is an OAuth token pair from Kommo.
type Token struct {
	AccessToken  string
	RefreshToken string        // "" for long-lived tokens
	ExpiresAt    time.Time     // server_time+expires_in when Kommo sent server_time, else Now()+expires_in
	ExpiresIn    time.Duration // the lifetime Kommo announced
}

// String redacts both tokens, so a Token is safe to print by accident.
func (t Token) String() string {
	return fmt.Sprintf("{AccessToken:REDACTED RefreshToken:REDACTED ExpiresAt:%s ExpiresIn:%s}",
		t.ExpiresAt.Format(time.RFC3339), t.ExpiresIn)
}

// GoString redacts both tokens for %#v.
func (t Token) GoString() string { return "kommo.Token" + t.String() }

type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Code         string `json:"code,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	RedirectURI  string `json:"redirect_uri"`
}

type tokenResponse struct {
	TokenType    string  `json:"token_type"`
	ExpiresIn    flexInt `json:"expires_in"`
	ServerTime   flexInt `json:"server_time"`
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
}

// ExchangeCode trades an authorization code for tokens at
// POST https://{accountHost}/oauth2/access_token. The code is single-use whatever happens:
// never call it twice with the same code. The caller must have checked accountHost with
// MatchesDomain: the client secret is sent there.
func (c *Client) ExchangeCode(ctx context.Context, accountHost string, app App, code string) (*Token, error) {
	return c.token(ctx, opExchange, accountHost, tokenRequest{
		ClientID:     app.ClientID,
		ClientSecret: app.ClientSecret,
		GrantType:    "authorization_code",
		Code:         code,
		RedirectURI:  app.RedirectURI,
	})
}

// Refresh rotates a refresh token. Kommo returns a new refresh token every time and the
// old one must be considered spent once sent: persist the result before anything else.
func (c *Client) Refresh(ctx context.Context, accountHost string, app App, refreshToken string) (*Token, error) {
	return c.token(ctx, opRefresh, accountHost, tokenRequest{
		ClientID:     app.ClientID,
		ClientSecret: app.ClientSecret,
		GrantType:    "refresh_token",
		RefreshToken: refreshToken,
		RedirectURI:  app.RedirectURI,
	})
}

func (c *Client) token(ctx context.Context, op, host string, tr tokenRequest) (*Token, error) {
	if tr.ClientID == "" || tr.ClientSecret == "" || tr.RedirectURI == "" || tr.Code == "" && tr.RefreshToken == "" {
		return nil, &Error{Op: op, Host: safeHost(host), Kind: KindBadRequest, cause: "missing credentials"}
	}
	data, err := c.do(ctx, call{
		api: apiOAuth, op: op, host: host,
		method: http.MethodPost, path: "/oauth2/access_token",
		header:  http.Header{"Content-Type": {"application/json"}},
		body:    jsonBody(tr),
		secrets: true,
	})
	if err != nil {
		return nil, err
	}
	var r tokenResponse
	if err := decode(op, host, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	if r.AccessToken == "" || r.RefreshToken == "" || r.ExpiresIn <= 0 ||
		(r.TokenType != "" && !strings.EqualFold(r.TokenType, "Bearer")) {
		return nil, malformed(op, host, http.StatusOK)
	}
	t := &Token{
		AccessToken:  r.AccessToken,
		RefreshToken: r.RefreshToken,
		ExpiresIn:    time.Duration(r.ExpiresIn) * time.Second,
	}
	base := c.now()
	if r.ServerTime > 0 {
		base = time.Unix(int64(r.ServerTime), 0)
	}
	t.ExpiresAt = base.Add(t.ExpiresIn).UTC()
	return t, nil
}

// Subdomain is where an account lives now, from CurrentSubdomain.
type Subdomain struct {
	ID             int64
	Subdomain      string // e.g. "acme"
	Domain         string // e.g. "acme.kommo.com"
	TopLevelDomain string // e.g. "com"
}

// Host returns the account host, e.g. "acme.kommo.com". Kommo's domain field is the full
// host; a bare suffix is joined to the subdomain. "" when unknown.
func (s Subdomain) Host() string {
	d := strings.ToLower(strings.TrimSuffix(s.Domain, "."))
	sub := strings.ToLower(s.Subdomain)
	switch {
	case d == "":
		return ""
	case sub == "" || strings.HasPrefix(d, sub+"."):
		return d
	}
	return sub + "." + d
}

type subdomainResponse struct {
	ID             flexInt `json:"id"`
	Subdomain      string  `json:"subdomain"`
	Domain         string  `json:"domain"`
	TopLevelDomain string  `json:"top_level_domain"`
}

// CurrentSubdomain asks Kommo where the account owning refreshToken lives now, at
// GET https://{apiDomain}/oauth2/account/current/subdomain (apiDomain from ParseClaims).
// Use it after a refresh fails with KindNotFound: the account renamed its subdomain.
// It does not consume the refresh token.
func (c *Client) CurrentSubdomain(ctx context.Context, apiDomain, refreshToken string) (*Subdomain, error) {
	if refreshToken == "" {
		return nil, &Error{Op: opSubdomain, Host: safeHost(apiDomain), Kind: KindBadRequest, cause: "missing credentials"}
	}
	data, err := c.do(ctx, call{
		api: apiOAuth, op: opSubdomain, host: apiDomain,
		method: http.MethodGet, path: "/oauth2/account/current/subdomain",
		header: http.Header{"X-Refresh-Token": {refreshToken}},
	})
	if err != nil {
		return nil, err
	}
	var r subdomainResponse
	if err := decode(opSubdomain, apiDomain, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	s := &Subdomain{ID: int64(r.ID), Subdomain: r.Subdomain, Domain: r.Domain, TopLevelDomain: r.TopLevelDomain}
	if s.ID <= 0 || checkHostname(s.Host()) != nil {
		return nil, malformed(opSubdomain, apiDomain, http.StatusOK)
	}
	return s, nil
}

// Account is what the account API says about the account a token belongs to.
type Account struct {
	ID        int64  // the CRM account id, as in the revoke hook
	AmojoID   string // the Chats API account id
	Subdomain string
}

type accountResponse struct {
	ID        flexInt `json:"id"`
	AmojoID   string  `json:"amojo_id"`
	Subdomain string  `json:"subdomain"`
}

// Account reads the account at GET https://{accountHost}/api/v4/account?with=amojo_id.
func (c *Client) Account(ctx context.Context, accountHost, accessToken string) (*Account, error) {
	if accessToken == "" {
		return nil, &Error{Op: opAccount, Host: safeHost(accountHost), Kind: KindBadRequest, cause: "missing credentials"}
	}
	data, err := c.do(ctx, call{
		api: apiAccount, op: opAccount, host: accountHost,
		method: http.MethodGet, path: "/api/v4/account?with=amojo_id",
		header: http.Header{"Authorization": {"Bearer " + accessToken}},
	})
	if err != nil {
		return nil, err
	}
	var r accountResponse
	if err := decode(opAccount, accountHost, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	if r.ID <= 0 || r.AmojoID == "" {
		return nil, malformed(opAccount, accountHost, http.StatusOK)
	}
	return &Account{ID: int64(r.ID), AmojoID: r.AmojoID, Subdomain: r.Subdomain}, nil
}
