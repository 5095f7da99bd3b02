package kommo

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kind classifies a failed Kommo call by what the caller should do about it.
type Kind string

// The kinds of Kommo errors. IsTerminal tells the ones a retry cannot fix.
const (
	// KindInvalidCode: 400 on the authorization_code grant (expired, used or unknown code).
	KindInvalidCode Kind = "InvalidCode"
	// KindInvalidClient: 401 client authentication failed (wrong secret or redirect_uri).
	KindInvalidClient Kind = "InvalidClient"
	// KindTokenRevoked: the refresh token is dead (401 "Token has been revoked", or a 400
	// on the refresh grant); only a reinstall helps.
	KindTokenRevoked Kind = "TokenRevoked"
	// KindRateLimited: 429; RetryAfter says how long to wait.
	KindRateLimited Kind = "RateLimited"
	// KindBlocked: 403 from the account or OAuth API (HTML: the IP is blocked or a WAF
	// refused; JSON: the account is blocked); back off, it is not a revocation.
	KindBlocked Kind = "Blocked"
	// KindNotFound: 404 (unknown channel ORIGIN_NOT_REGISTERED, account renamed or gone).
	KindNotFound Kind = "NotFound"
	// KindUnauthorized: 401 on a Bearer or X-Refresh-Token call (refresh and retry), or a
	// 401 without a hint on a refresh (the account may have renamed its subdomain).
	KindUnauthorized Kind = "Unauthorized"
	// KindInvalidSignature: Chats API 403 ORIGIN_INVALID_SIGNATURE (wrong channel secret).
	KindInvalidSignature Kind = "InvalidSignature"
	// KindBadRequest: any other 4xx.
	KindBadRequest Kind = "BadRequest"
	// KindTransient: 5xx, timeouts, connection errors, redirects and malformed 2xx bodies.
	KindTransient Kind = "Transient"
)

// Error is a failed Kommo call. It carries no request or response content beyond Hint,
// which is only ever one of a fixed set of Kommo phrases, so it is safe to log, to put in
// events and in conditions.
type Error struct {
	Op string // operation: "exchange", "refresh", "subdomain", "account", "connect", "disconnect",
	// "list_sources", "create_sources", "update_sources", "delete_sources", "pipelines"
	Host       string        // the Kommo host called, never a URL
	Status     int           // HTTP status; 0 when no response arrived
	Kind       Kind          // what to do about it
	RetryAfter time.Duration // for KindRateLimited
	Hint       string        // Kommo's "hint" or amojo "error_type", only when it is a known safe phrase
	Items      []ItemError   // for a 400 on a batch: the refused items, when Kommo named them

	cause string // fixed phrase for failures without a status: "timeout", "connection error", ...
	err   error  // only context.Canceled or context.DeadlineExceeded, for errors.Is
}

// Error formats "kommo <op> at <host>: [<status> ]<Kind>[: <cause>][ (<hint>)][, retry after <d>]",
// e.g. "kommo exchange at acme.kommo.com: 400 InvalidCode".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("kommo ")
	b.WriteString(e.Op)
	b.WriteString(" at ")
	b.WriteString(e.Host)
	b.WriteString(": ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteByte(' ')
	}
	b.WriteString(string(e.Kind))
	if e.cause != "" {
		b.WriteString(": ")
		b.WriteString(e.cause)
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	if len(e.Items) > 0 {
		ie := e.Items[0]
		b.WriteString(": item ")
		if ie.ExternalID != "" {
			b.WriteString(strconv.Quote(ie.ExternalID))
		} else {
			b.WriteString(strconv.Itoa(ie.Index))
		}
		b.WriteString(" ")
		b.WriteString(ie.Reason())
		if ie.Field != "" {
			b.WriteString(" at ")
			b.WriteString(ie.Field)
		}
		if len(e.Items) > 1 {
			b.WriteString(" and ")
			b.WriteString(strconv.Itoa(len(e.Items) - 1))
			b.WriteString(" more")
		}
	}
	if e.Kind == KindRateLimited && e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.String())
	}
	return b.String()
}

// Unwrap exposes a context error, so errors.Is(err, context.Canceled) works. Transport
// errors are never wrapped: *url.Error carries the URL.
func (e *Error) Unwrap() error { return e.err }

func asError(err error, e **Error) bool { return errors.As(err, e) }

// KindOf returns the Kind of a *Error in err's chain, or "".
func KindOf(err error) Kind {
	var e *Error
	if asError(err, &e) {
		return e.Kind
	}
	return ""
}

// IsTerminal reports whether retrying the same call cannot succeed: the caller should
// record a reason and wait for a change (new code, new secret, reinstall).
func IsTerminal(err error) bool {
	switch KindOf(err) {
	case KindInvalidCode, KindInvalidClient, KindTokenRevoked, KindNotFound, KindInvalidSignature, KindBadRequest:
		return true
	}
	return false
}

// RetryAfterOf returns how long Kommo asked to wait (a 429's retry_after) or how long
// every call is held (after a 429 or a block).
func RetryAfterOf(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && (e.Kind == KindRateLimited || e.RetryAfter > 0) {
		return e.RetryAfter, true
	}
	return 0, false
}

// Retry-After bounds: a missing value still makes callers pause; a huge one is not trusted.
const (
	defaultRetryAfter = time.Second
	maxRetryAfter     = time.Hour
)

// Hints Kommo's OAuth server (league/oauth2-server) sends; only these are kept, so an error
// never carries text that might echo a request.
var knownHints = []string{
	"Token has been revoked",
	"Token has expired",
	"Cannot decrypt the refresh token",
	"Token is not linked to client",
	"Authorization code has expired",
	"Authorization code has been revoked",
	"Cannot decrypt the authorization code",
	"Authorization code was not issued to this client",
	"Client authentication failed",
}

const hintRevoked = "Token has been revoked"

// amojo error types are SCREAMING_SNAKE identifiers such as ORIGIN_INVALID_SIGNATURE.
var errorTypeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// problem is the union of Kommo's problem JSON and amojo's error JSON.
type problem struct {
	Hint       string          `json:"hint"`
	Detail     string          `json:"detail"`
	ErrorType  string          `json:"error_type"`
	RetryAfter json.RawMessage `json:"retry_after"`
}

func safeHint(s string) string {
	s = strings.TrimSpace(s)
	for _, h := range knownHints {
		if strings.EqualFold(s, h) {
			return h
		}
	}
	return ""
}

// api names the three Kommo surfaces, with different 401/403 meanings.
type api string

const (
	apiOAuth   api = "oauth"
	apiAccount api = "account"
	apiChats   api = "chats"
)

// classify turns a non-2xx response into an *Error. body is only parsed, never kept.
func classify(a api, op, host string, status int, h http.Header, body []byte, now time.Time) *Error {
	e := &Error{Op: op, Host: host, Status: status}
	var p problem
	isJSON := json.Unmarshal(body, &p) == nil && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
	if isJSON {
		if e.Hint = safeHint(p.Hint); e.Hint == "" {
			e.Hint = safeHint(p.Detail)
		}
		if e.Hint == "" && errorTypeRE.MatchString(p.ErrorType) {
			e.Hint = p.ErrorType
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
		e.RetryAfter = retryAfter(p.RetryAfter, h.Get("Retry-After"), now)
	case status == http.StatusForbidden:
		// A 403 outside the Chats API is an IP block, a WAF or a blocked account: back off,
		// never conclude the grant is gone.
		switch {
		case a == apiChats && p.ErrorType == "ORIGIN_INVALID_SIGNATURE":
			e.Kind = KindInvalidSignature
		case a == apiChats && isJSON:
			e.Kind = KindBadRequest
		default:
			e.Kind = KindBlocked
		}
	case status == http.StatusNotFound:
		e.Kind = KindNotFound
	case status == http.StatusUnauthorized && op == opExchange:
		e.Kind = KindInvalidClient
	case status == http.StatusUnauthorized && op == opRefresh:
		switch e.Hint {
		case "Client authentication failed":
			e.Kind = KindInvalidClient
		case "":
			// No hint: what the old host of a renamed account answers. The caller asks
			// where the account lives now.
			e.Kind = KindUnauthorized
		default:
			e.Kind = KindTokenRevoked
		}
	case status == http.StatusUnauthorized && a != apiChats:
		// Bearer and X-Refresh-Token calls: the caller refreshes, and the refresh tells
		// whether the grant is really gone.
		e.Kind = KindUnauthorized
	case status == http.StatusBadRequest && op == opExchange:
		e.Kind = KindInvalidCode
	case status == http.StatusBadRequest && op == opRefresh:
		e.Kind = KindTokenRevoked
	case status == http.StatusRequestTimeout || status == http.StatusTooEarly:
		e.Kind = KindTransient
	case status >= 400 && status < 500:
		e.Kind = KindBadRequest
	default:
		// 5xx, and 1xx/3xx we do not expect (redirects are never followed: they could
		// carry the client secret to another host).
		e.Kind = KindTransient
	}
	return e
}

// retryAfter prefers the body's retry_after (Kommo's documented field), then the header.
func retryAfter(body json.RawMessage, header string, now time.Time) time.Duration {
	d := time.Duration(-1)
	if len(body) > 0 {
		s := strings.Trim(string(body), `"`)
		if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < maxRetryAfter.Seconds() {
			d = time.Duration(f * float64(time.Second))
		} else if err == nil && f >= 0 {
			d = maxRetryAfter
		}
	}
	if d < 0 && header != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(header)); err == nil && n >= 0 {
			d = time.Duration(min(n, int(maxRetryAfter/time.Second))) * time.Second
		} else if t, err := http.ParseTime(header); err == nil {
			d = max(t.Sub(now), 0)
		}
	}
	switch {
	case d <= 0:
		return defaultRetryAfter
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}
