package kommo

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configures a Client. The zero value is ready for production.
type Options struct {
	// HTTPClient sends the requests; nil means a shared client with dial and TLS handshake
	// timeouts of 5s, response headers within 15s, 30s overall, keep-alive and TLS 1.2+.
	// Redirects are never followed, whatever client is given: a redirect could carry the
	// client secret to another host.
	HTTPClient *http.Client
	// Endpoint, when set, is a base URL such as "http://127.0.0.1:8443" that receives every
	// request, with the original Kommo host in the Host header (local runs and tests).
	// Empty in production: requests go to "https://"+host.
	Endpoint string
	// QPS is the request rate allowed per destination host and in total; 0 means 7, Kommo's
	// limit. +Inf disables throttling.
	QPS float64
	// Burst is the number of requests allowed at once; 0 means 1, so that no one-second
	// window ever sees more than QPS requests (Kommo counts per second, and repeated
	// overruns block the IP).
	Burst int
	// Observe, when set, is called after every HTTP exchange, e.g. for metrics. api is
	// "oauth", "account" (the account, sources and pipelines APIs) or "chats"; operation is
	// the Error.Op name; code is the HTTP status, 0 when no response arrived.
	Observe func(api, operation string, code int, elapsed time.Duration)
	// Now is the clock for Date headers and expiry maths; nil means time.Now.
	Now func() time.Time
	// BlockedPause is how long every call is held after a block (an HTML 403); 0 means
	// BlockedPause.
	BlockedPause time.Duration
}

// DefaultQPS is Kommo's documented limit of 7 requests per second.
const DefaultQPS = 7

// BlockedPause is how long every call is held after Kommo answers with a block (an HTML
// 403): Kommo blocks per IP and repeated requests extend the block.
const BlockedPause = time.Minute

// Client calls Kommo's OAuth, account and Chats APIs. It is safe for concurrent use.
type Client struct {
	hc       *http.Client
	endpoint *url.URL
	observe  func(api, operation string, code int, elapsed time.Duration)
	now      func() time.Time
	lim      *limiters
	blocked  time.Duration
}

// NewClient returns a Client, or an error when Endpoint is not a bare http(s) base URL or
// the rate settings are invalid.
func NewClient(o Options) (*Client, error) {
	c := &Client{observe: o.Observe, now: o.Now, blocked: o.BlockedPause}
	if c.blocked <= 0 {
		c.blocked = BlockedPause
	}
	if c.now == nil {
		c.now = time.Now
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
			return nil, errors.New("kommo: Endpoint must be a base URL such as http://127.0.0.1:8443")
		}
		c.endpoint = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	qps, burst := o.QPS, o.Burst
	if qps == 0 {
		qps = DefaultQPS
	}
	if qps < 0 || math.IsNaN(qps) {
		return nil, errors.New("kommo: QPS must be positive")
	}
	if burst == 0 {
		burst = 1
	}
	if burst < 0 {
		return nil, errors.New("kommo: Burst must be positive")
	}
	c.lim = newLimiters(qps, burst)
	hc := o.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	// A shallow copy, so the caller's client keeps its own redirect policy.
	cp := *hc
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &cp
	return c, nil
}

var defaultHTTPClient = sync.OnceValue(func() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 15 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   8,
			ForceAttemptHTTP2:     true,
		},
	}
})

// Operation names, as in Error.Op and the Observe hook.
const (
	opExchange   = "exchange"
	opRefresh    = "refresh"
	opSubdomain  = "subdomain"
	opAccount    = "account"
	opConnect    = "connect"
	opDisconnect = "disconnect"

	opListSources   = "list_sources"
	opCreateSources = "create_sources"
	opUpdateSources = "update_sources"
	opDeleteSources = "delete_sources"
	opPipelines     = "pipelines"
)

// maxResponseBody bounds what is read from Kommo; real responses are a few KiB.
const maxResponseBody = 1 << 20

const userAgent = "kommo-operator (+https://github.com/kommo-operator/kommo-operator)"

// call is one HTTP exchange with Kommo.
type call struct {
	api     api
	op      string
	host    string // destination host, validated
	method  string
	path    string // path plus optional query; never carries secrets
	header  http.Header
	body    []byte // sent exactly
	secrets bool   // the body carries the client secret: HTTPS only
	items   bool   // a batch: a 400 body names the refused items (Error.Items)
}

// requestURL returns the URL to send to, honouring Endpoint.
func (c *Client) requestURL(host, pathQuery string) (*url.URL, error) {
	base := &url.URL{Scheme: "https", Host: host}
	if c.endpoint != nil {
		base = c.endpoint
	}
	return base.Parse(pathQuery)
}

// errSecretOverHTTP is never expected: it guards the invariant that the client secret only
// travels over TLS unless a local Endpoint was configured on purpose.
var errSecretOverHTTP = errors.New("refusing to send the client secret over plain HTTP")

// checkSecretTransport enforces DESIGN §6: client_secret goes over HTTPS, except to an
// explicitly configured Endpoint.
func checkSecretTransport(u *url.URL, endpointSet bool) error {
	if u.Scheme == "https" || endpointSet {
		return nil
	}
	return errSecretOverHTTP
}

// do performs the call and returns the body of a 2xx response. Every failure is an
// *Error, free of URLs, bodies and headers.
func (c *Client) do(ctx context.Context, k call) ([]byte, error) {
	if err := checkHostname(k.host); err != nil {
		return nil, &Error{Op: k.op, Host: safeHost(k.host), Kind: KindBadRequest, cause: "invalid host"}
	}
	u, err := c.requestURL(k.host, k.path)
	if err != nil {
		return nil, &Error{Op: k.op, Host: k.host, Kind: KindBadRequest, cause: "invalid path"}
	}
	if k.secrets {
		if err := checkSecretTransport(u, c.endpoint != nil); err != nil {
			return nil, &Error{Op: k.op, Host: k.host, Kind: KindBadRequest, cause: err.Error()}
		}
	}
	if err := c.lim.wait(ctx, k.host); err != nil {
		var held *heldError
		if errors.As(err, &held) {
			return nil, &Error{Op: k.op, Host: k.host, Kind: held.kind, RetryAfter: held.left, cause: "held after an earlier refusal"}
		}
		e := &Error{Op: k.op, Host: k.host, Kind: KindTransient, cause: "rate limit wait timeout", err: context.DeadlineExceeded}
		if errors.Is(err, context.Canceled) {
			e.cause, e.err = "rate limit wait canceled", context.Canceled
		}
		return nil, e
	}
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u.String(), body)
	if err != nil {
		return nil, &Error{Op: k.op, Host: k.host, Kind: KindBadRequest, cause: "invalid request"}
	}
	req.Host = k.host
	for key, v := range k.header {
		req.Header[key] = v
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.observed(k, 0, time.Since(start))
		return nil, transportError(ctx, k, err, "")
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	c.observed(k, resp.StatusCode, time.Since(start))
	if err != nil {
		return nil, transportError(ctx, k, err, " reading response")
	}
	if len(data) > maxResponseBody {
		return nil, &Error{Op: k.op, Host: k.host, Status: resp.StatusCode, Kind: KindTransient, cause: "response too large"}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := classify(k.api, k.op, k.host, resp.StatusCode, resp.Header, data, c.now())
		if k.items && resp.StatusCode == http.StatusBadRequest {
			e.Items = parseItemErrors(data)
		}
		switch e.Kind {
		case KindRateLimited:
			// Kommo counts requests per caller IP: every request waits out retry_after,
			// not just the one that was refused.
			c.lim.holdUntil(c.lim.now().Add(e.RetryAfter), e.Kind)
		case KindBlocked:
			// A block is per IP too, and more requests extend it: pause every call.
			e.RetryAfter = c.blocked
			c.lim.holdUntil(c.lim.now().Add(c.blocked), e.Kind)
		}
		return nil, e
	}
	return data, nil
}

// safeHost returns host for an error message, or a placeholder when it is not a plain
// host name (it could be anything a caller passed, even a token by mistake).
func safeHost(host string) string {
	if checkHostname(host) != nil {
		return "(invalid host)"
	}
	return host
}

func (c *Client) observed(k call, code int, d time.Duration) {
	if c.observe != nil {
		c.observe(string(k.api), k.op, code, d)
	}
}

// transportError describes a failed exchange by its nature only: err is a *url.Error
// carrying the URL, so it is never wrapped.
func transportError(ctx context.Context, k call, err error, phase string) *Error {
	e := &Error{Op: k.op, Host: k.host, Kind: KindTransient}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		e.cause, e.err = "canceled", context.Canceled
	case ctx.Err() != nil:
		e.cause, e.err = "timeout", context.DeadlineExceeded
	case isTimeout(err):
		e.cause = "timeout"
	default:
		e.cause = "connection error"
	}
	e.cause += phase
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// decode parses a 2xx body; a body that does not parse is a Transient error (Kommo's
// gateways sometimes answer 200 with an HTML page).
func decode(op, host string, status int, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return malformed(op, host, status)
	}
	return nil
}

func malformed(op, host string, status int) *Error {
	return &Error{Op: op, Host: host, Status: status, Kind: KindTransient, cause: "malformed response"}
}

// jsonBody marshals v without HTML escaping, as Kommo's own clients send it.
func jsonBody(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only plain structs of strings are encoded here.
		panic(fmt.Sprintf("kommo: marshal request body: %v", err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// flexInt accepts a JSON number or a numeric string; Kommo is not consistent.
type flexInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	var n json.Number = json.Number(s)
	if i, err := n.Int64(); err == nil {
		*f = flexInt(i)
		return nil
	}
	fl, err := n.Float64()
	if err != nil || math.IsInf(fl, 0) || math.Abs(fl) > 1<<62 {
		return errors.New("not a number")
	}
	*f = flexInt(fl)
	return nil
}
