package kommo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	problem := func(status int, hint string) string {
		return fmt.Sprintf(`{"title":"Ошибка","type":"https://httpstatus.es/%d","status":%d,"detail":"x","hint":%q}`, status, status, hint)
	}
	html := "<html><body>blocked</body></html>"
	tests := []struct {
		name       string
		api        api
		op         string
		status     int
		header     http.Header
		body       string
		kind       Kind
		hint       string
		retryAfter time.Duration
	}{
		{"exchange 400", apiOAuth, opExchange, 400, nil, problem(400, "Authorization code has expired"), KindInvalidCode, "Authorization code has expired", 0},
		{"exchange 401", apiOAuth, opExchange, 401, nil, `{"status":401,"detail":"Client authentication failed"}`, KindInvalidClient, "Client authentication failed", 0},
		{"refresh 401 revoked", apiOAuth, opRefresh, 401, nil, problem(401, "Token has been revoked"), KindTokenRevoked, "Token has been revoked", 0},
		{"refresh 401 hint case", apiOAuth, opRefresh, 401, nil, problem(401, "token HAS been revoked"), KindTokenRevoked, "Token has been revoked", 0},
		{"refresh 401 client", apiOAuth, opRefresh, 401, nil, `{"status":401,"detail":"Client authentication failed"}`, KindInvalidClient, "Client authentication failed", 0},
		{"refresh 401 no hint", apiOAuth, opRefresh, 401, nil, problem(401, ""), KindUnauthorized, "", 0},
		{"refresh 400", apiOAuth, opRefresh, 400, nil, problem(400, "Cannot decrypt the refresh token"), KindTokenRevoked, "Cannot decrypt the refresh token", 0},
		{"refresh 404 renamed", apiOAuth, opRefresh, 404, nil, problem(404, ""), KindNotFound, "", 0},
		{"account 401", apiAccount, opAccount, 401, nil, problem(401, "Token has been revoked"), KindUnauthorized, "Token has been revoked", 0},
		{"subdomain 401", apiOAuth, opSubdomain, 401, nil, problem(401, ""), KindUnauthorized, "", 0},
		{"429 body", apiAccount, opAccount, 429, nil, `{"status":429,"retry_after":3}`, KindRateLimited, "", 3 * time.Second},
		{"429 body string", apiAccount, opAccount, 429, nil, `{"retry_after":"2"}`, KindRateLimited, "", 2 * time.Second},
		{"429 header seconds", apiAccount, opAccount, 429, http.Header{"Retry-After": {"7"}}, "", KindRateLimited, "", 7 * time.Second},
		{"429 header date", apiAccount, opAccount, 429, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, "", KindRateLimited, "", 90 * time.Second},
		{"429 body wins", apiAccount, opAccount, 429, http.Header{"Retry-After": {"9"}}, `{"retry_after":4}`, KindRateLimited, "", 4 * time.Second},
		{"429 nothing", apiAccount, opAccount, 429, nil, "", KindRateLimited, "", time.Second},
		{"429 huge", apiAccount, opAccount, 429, nil, `{"retry_after":1e12}`, KindRateLimited, "", time.Hour},
		{"403 html", apiOAuth, opRefresh, 403, nil, html, KindBlocked, "", 0},
		{"403 empty", apiAccount, opAccount, 403, nil, "", KindBlocked, "", 0},
		{"403 json account", apiAccount, opAccount, 403, nil, problem(403, ""), KindBlocked, "", 0},
		{"403 chats signature", apiChats, opConnect, 403, nil, `{"status":0,"error_code":403,"error_type":"ORIGIN_INVALID_SIGNATURE"}`, KindInvalidSignature, "ORIGIN_INVALID_SIGNATURE", 0},
		{"403 chats html", apiChats, opConnect, 403, nil, html, KindBlocked, "", 0},
		{"403 chats other", apiChats, opConnect, 403, nil, `{"error_type":"FORBIDDEN"}`, KindBadRequest, "FORBIDDEN", 0},
		{"404 chats", apiChats, opConnect, 404, nil, `{"status":0,"error_code":404,"error_type":"ORIGIN_NOT_REGISTERED"}`, KindNotFound, "ORIGIN_NOT_REGISTERED", 0},
		{"400 chats", apiChats, opConnect, 400, nil, `{"error_type":"bad type echoing input"}`, KindBadRequest, "", 0},
		{"422 account", apiAccount, opAccount, 422, nil, "", KindBadRequest, "", 0},
		{"408", apiAccount, opAccount, 408, nil, "", KindTransient, "", 0},
		{"500", apiOAuth, opRefresh, 500, nil, problem(500, ""), KindTransient, "", 0},
		{"502 html", apiOAuth, opExchange, 502, nil, html, KindTransient, "", 0},
		{"307", apiOAuth, opExchange, 307, nil, "", KindTransient, "", 0},
		{"unknown hint dropped", apiOAuth, opExchange, 400, nil, problem(400, "Code def50200abc is invalid"), KindInvalidCode, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			e := classify(tc.api, tc.op, "acme.kommo.com", tc.status, h, []byte(tc.body), now)
			if e.Kind != tc.kind || e.Hint != tc.hint || e.RetryAfter != tc.retryAfter || e.Status != tc.status {
				t.Fatalf("got %#v, want kind %s hint %q retry %s", e, tc.kind, tc.hint, tc.retryAfter)
			}
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	e := &Error{Op: "exchange", Host: "acme.kommo.com", Status: 400, Kind: KindInvalidCode}
	if got, want := e.Error(), "kommo exchange at acme.kommo.com: 400 InvalidCode"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	rl := &Error{Op: "account", Host: "acme.kommo.com", Status: 429, Kind: KindRateLimited, RetryAfter: 3 * time.Second}
	if got, want := rl.Error(), "kommo account at acme.kommo.com: 429 RateLimited, retry after 3s"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	tr := &Error{Op: "refresh", Host: "acme.kommo.com", Kind: KindTransient, cause: "timeout", err: context.DeadlineExceeded}
	if got, want := tr.Error(), "kommo refresh at acme.kommo.com: Transient: timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("reconcile: %w", tr)
	if KindOf(wrapped) != KindTransient || !errors.Is(wrapped, context.DeadlineExceeded) || IsTerminal(wrapped) {
		t.Error("wrapped transient error not recognised")
	}
	if d, ok := RetryAfterOf(fmt.Errorf("x: %w", rl)); !ok || d != 3*time.Second {
		t.Errorf("RetryAfterOf = %s, %v", d, ok)
	}
	if _, ok := RetryAfterOf(e); ok {
		t.Error("RetryAfterOf of a non-429")
	}
	if KindOf(errors.New("x")) != "" || IsTerminal(errors.New("x")) || IsTerminal(nil) {
		t.Error("foreign errors must have no kind")
	}
	terminal := map[Kind]bool{
		KindInvalidCode: true, KindInvalidClient: true, KindTokenRevoked: true, KindNotFound: true,
		KindInvalidSignature: true, KindBadRequest: true,
		KindRateLimited: false, KindBlocked: false, KindUnauthorized: false, KindTransient: false,
	}
	for k, want := range terminal {
		if got := IsTerminal(&Error{Kind: k}); got != want {
			t.Errorf("IsTerminal(%s) = %v, want %v", k, got, want)
		}
	}
}

func TestCheckSecretTransport(t *testing.T) {
	tests := []struct {
		url      string
		endpoint bool
		ok       bool
	}{
		{"https://acme.kommo.com/oauth2/access_token", false, true},
		{"http://acme.kommo.com/oauth2/access_token", false, false},
		{"http://127.0.0.1:8443/oauth2/access_token", true, true},
	}
	for _, tc := range tests {
		u, _ := http.NewRequest("POST", tc.url, nil)
		if err := checkSecretTransport(u.URL, tc.endpoint); (err == nil) != tc.ok {
			t.Errorf("checkSecretTransport(%s, %v) = %v", tc.url, tc.endpoint, err)
		}
	}
}
