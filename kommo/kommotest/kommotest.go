// Package kommotest is a strict, in-memory Kommo for tests, the demo and benchmarks: the
// OAuth token endpoint (single-use codes, rotating refresh tokens, JWT access tokens), the
// account API, the subdomain lookup, the signed Chats API connect and disconnect, the
// "access revoked" hook, the Sources and pipelines APIs, per-host rate limiting and
// injectable faults. It routes on the
// request's Host, so a kommo.Client with Options.Endpoint set reaches it unchanged.
//
// It is deliberately unforgiving: anything the real Kommo might reject, it rejects.
package kommotest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kommo-operator/kommo-operator/kommo"
)

// Options configures a Simulator. The zero value behaves like production Kommo.
type Options struct {
	// Now is the simulator's clock for codes, tokens and Chats API Date checks; default
	// time.Now. Tests move it instead of sleeping.
	Now func() time.Time
	// RateClock is the clock of the per-host rate limiter; default time.Now. It is separate
	// from Now because clients throttle in real time while tests move Now.
	RateClock func() time.Time
	// CodeTTL is how long an authorization code stays valid; default 20m.
	CodeTTL time.Duration
	// TokenLifetime is the access token lifetime; default 24h.
	TokenLifetime time.Duration
	// RefreshTokenLifetime is the refresh token lifetime; default 90 days.
	RefreshTokenLifetime time.Duration
	// RefreshGrace false: refresh tokens are strictly single-use (Kommo's Russian docs).
	// true: a used refresh token keeps working until the pair it produced is first used
	// (Kommo's newer docs), which lets a client recover from a lost refresh response.
	RefreshGrace bool
	// QPS is the request rate allowed per Host (burst ceil(QPS)); over it Kommo answers
	// 429 with retry_after. 0 means 7; negative disables the limit.
	QPS float64
	// AutoAccounts creates an account on the first request to any account-looking host,
	// with an id and amojo_id derived deterministically from the host.
	AutoAccounts bool
	// SourceLimit is how many sources one integration may have in one account; default
	// 100 (older Kommo docs say 50).
	SourceLimit int
}

// Fault is a failure to inject into matching requests, in the order queued.
type Fault struct {
	Op string // "exchange", "refresh", "subdomain", "account", "connect", "disconnect", "list_sources",
	// "create_sources", "update_sources", "delete_sources", "pipelines"; "" = any
	Host        string        // request Host without port; "" = any
	Times       int           // how many matching requests it hits; 0 means 1
	Status      int           // answer this status instead of processing the request (0: process it)
	Hint        string        // "hint" (or amojo "error_type") of the fault's error body
	HTMLBlocked bool          // with Status 403: an HTML page, as when Kommo blocks an IP
	RetryAfter  time.Duration // with Status 429: retry_after in the body (whole seconds, at least 1)
	Latency     time.Duration // wait before answering; gives up when the client does
	// DropResponse applies the request (e.g. rotates the refresh token) and then closes the
	// connection without answering: the "lost refresh response" case.
	DropResponse bool
	// ExternalID aims the fault at one item of a sources POST or PATCH: Kommo refuses
	// that item (400, per-item error) and with it the request; Status and the other
	// fields are ignored. Times counts refusals.
	ExternalID string
}

// Call is one request the simulator received (the /_sim/ control API excluded).
type Call struct {
	Time     time.Time `json:"time"` // simulator clock
	Host     string    `json:"host"`
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Op       string    `json:"op"`                 // as in Fault.Op; "" when unrecognised
	Status   int       `json:"status"`             // the status produced; 0 when the client gave up first
	ClientID string    `json:"clientID,omitempty"` // integration the call was made for, when known
	Dropped  bool      `json:"dropped,omitempty"`  // the response was dropped by a fault
}

type integration struct {
	clientID, secret, redirectURI string
	widgetCode                    string
	multipleSources               bool
}

type account struct {
	host      string
	id        int64
	amojoID   string
	pipelines []*Pipeline
	sources   []*storedSource
}

type authCode struct {
	acct     *account
	clientID string
	expires  time.Time
	used     bool
	seq      int // issue order, 1-based: names the install a grant descends from
	// exchanges counts successful exchanges (at most 1) and reuses the exchanges
	// attempted after it: a code exchanged twice is a protocol violation.
	exchanges, reuses int
	exchangedAt       time.Time
}

// grant is one access/refresh pair.
type grant struct {
	acct        *account
	clientID    string
	access      string
	refresh     string
	accessExp   time.Time
	refreshExp  time.Time
	used        bool // either token of the pair was used
	refreshUsed bool // the refresh token was exchanged
	revoked     bool
	next        *grant // the pair the refresh produced
	origin      *authCode
}

type channel struct{ id, secret, clientID string }

type connKey struct{ channelID, amojoID string }

type queuedFault struct {
	Fault
	left int
}

// Simulator is the simulated Kommo. It is safe for concurrent use.
type Simulator struct {
	o      Options
	jwtKey []byte

	mu           sync.Mutex
	integrations map[string]*integration
	accounts     map[string]*account // by current host
	byAmojo      map[string]*account
	renamed      map[string]string // old host → new host
	codes        map[string]*authCode
	access       map[string]*grant
	refresh      map[string]*grant
	channels     map[string]*channel
	connections  map[connKey]string
	limiters     map[string]*rate.Limiter
	faults       []*queuedFault
	calls        []Call
	secrets      []string
	replays      int
	codeSeq      int
	stats        Stats
	nextID       int64 // last pipeline or source id handed out
}

const (
	defaultCodeTTL       = 20 * time.Minute
	defaultTokenLifetime = 24 * time.Hour
	defaultRefreshLife   = 90 * 24 * time.Hour
	maxRequestBody       = 64 << 10
)

// New returns a Simulator with no integrations, accounts or channels.
func New(o Options) *Simulator {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RateClock == nil {
		o.RateClock = time.Now
	}
	if o.CodeTTL <= 0 {
		o.CodeTTL = defaultCodeTTL
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = defaultTokenLifetime
	}
	if o.RefreshTokenLifetime <= 0 {
		o.RefreshTokenLifetime = defaultRefreshLife
	}
	if o.QPS == 0 {
		o.QPS = kommo.DefaultQPS
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &Simulator{
		o:            o,
		jwtKey:       key,
		integrations: map[string]*integration{},
		accounts:     map[string]*account{},
		byAmojo:      map[string]*account{},
		renamed:      map[string]string{},
		codes:        map[string]*authCode{},
		access:       map[string]*grant{},
		refresh:      map[string]*grant{},
		channels:     map[string]*channel{},
		connections:  map[connKey]string{},
		limiters:     map[string]*rate.Limiter{},
		nextID:       5_000_000,
	}
}

// NewServer starts a plain-HTTP server for a new Simulator, serving both the Kommo APIs
// and the /_sim/ control API. Close the server when done.
func NewServer(o Options) (*Simulator, *httptest.Server) {
	s := New(o)
	return s, httptest.NewServer(s.Handler())
}

// AddIntegration registers an integration as Kommo's developer UI would.
func (s *Simulator) AddIntegration(clientID, clientSecret, redirectURI string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.integrations[clientID] = &integration{clientID: clientID, secret: clientSecret, redirectURI: redirectURI}
	s.secrets = append(s.secrets, clientSecret)
}

// RotateClientSecret replaces the integration's client secret, as its developer would in
// Kommo's UI: from then on only the new secret authenticates token requests and signs
// revoke hooks. It panics when the integration is unknown.
func (s *Simulator) RotateClientSecret(clientID, newSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.integrations[clientID]
	if in == nil {
		panic("kommotest: RotateClientSecret: no integration " + clientID)
	}
	in.secret = newSecret
	s.secrets = append(s.secrets, newSecret)
}

// AddAccount creates (or replaces) the account at host.
func (s *Simulator) AddAccount(host string, id int64, amojoID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.accounts[host]; old != nil {
		delete(s.byAmojo, old.amojoID)
	}
	a := s.newAccountLocked(host, id, amojoID)
	s.accounts[host] = a
	s.byAmojo[amojoID] = a
	delete(s.renamed, host)
}

// AddChannel registers a Chats API channel and its secret.
func (s *Simulator) AddChannel(channelID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[channelID] = &channel{id: channelID, secret: secret}
	s.secrets = append(s.secrets, secret)
}

// BindChannel ties a channel to the integration that owns it, so that RevokeAccess of
// that integration disconnects only its own channels. Unbound channels are disconnected
// by any revocation on the account.
func (s *Simulator) BindChannel(channelID, clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.channels[channelID]; ch != nil {
		ch.clientID = clientID
	}
}

// IssueCode returns an authorization code for the account and integration, as the consent
// screen would. The code is bound to both, single-use, and expires after CodeTTL. It panics
// when the account does not exist (and AutoAccounts cannot create it).
func (s *Simulator) IssueCode(accountHost, clientID string) string {
	code, err := s.issueCode(accountHost, clientID)
	if err != nil {
		panic("kommotest: IssueCode: " + err.Error())
	}
	return code
}

func (s *Simulator) issueCode(accountHost, clientID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountHost)
	if a == nil {
		return "", fmt.Errorf("no account at %q", accountHost)
	}
	if clientID == "" {
		return "", fmt.Errorf("empty client id")
	}
	code := "def50200" + randomHex(96)
	s.codeSeq++
	s.codes[code] = &authCode{acct: a, clientID: clientID, expires: s.o.Now().Add(s.o.CodeTTL), seq: s.codeSeq}
	s.secrets = append(s.secrets, code)
	return code, nil
}

// RevokeAccess disables the integration in the account, as its admin would: every token
// pair of the integration there dies (401 "Token has been revoked"), pending codes die, the
// integration's channels are disconnected, and the "access revoked" hook query that Kommo
// would send (client_uuid, account_id, signature) is returned. It panics when the account
// or integration is unknown.
func (s *Simulator) RevokeAccess(accountHost, clientID string) url.Values {
	q, err := s.revokeAccess(accountHost, clientID)
	if err != nil {
		panic("kommotest: RevokeAccess: " + err.Error())
	}
	return q
}

func (s *Simulator) revokeAccess(accountHost, clientID string) (url.Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountHost)
	if a == nil {
		return nil, fmt.Errorf("no account at %q", accountHost)
	}
	in := s.integrations[clientID]
	if in == nil {
		return nil, fmt.Errorf("no integration %q", clientID)
	}
	for _, g := range s.access { // every pair, long-lived tokens included
		if g.acct == a && g.clientID == clientID {
			g.revoked = true
		}
	}
	for _, c := range s.codes {
		if c.acct == a && c.clientID == clientID {
			c.used = true
		}
	}
	for k := range s.connections {
		ch := s.channels[k.channelID]
		if k.amojoID == a.amojoID && ch != nil && (ch.clientID == "" || ch.clientID == clientID) {
			delete(s.connections, k)
		}
	}
	accountID := strconv.FormatInt(a.id, 10)
	sig := kommo.RevokeSignature(in.secret, clientID, accountID)
	s.secrets = append(s.secrets, sig)
	return url.Values{"client_uuid": {clientID}, "account_id": {accountID}, "signature": {sig}}, nil
}

// Rename moves an account to a new subdomain: everything at the old host answers 404,
// tokens keep working at the new host, and the subdomain lookup reports the new host.
// It panics when oldHost has no account or newHost has one.
func (s *Simulator) Rename(oldHost, newHost string) {
	if err := s.rename(oldHost, newHost); err != nil {
		panic("kommotest: Rename: " + err.Error())
	}
}

func (s *Simulator) rename(oldHost, newHost string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[oldHost]
	if a == nil || s.accounts[newHost] != nil || !accountLike(newHost) {
		return fmt.Errorf("need an account at %q and a free account host at %q", oldHost, newHost)
	}
	delete(s.accounts, oldHost)
	a.host = newHost
	s.accounts[newHost] = a
	s.renamed[oldHost] = newHost
	delete(s.renamed, newHost)
	return nil
}

// Inject queues a fault; the first queued fault matching a request is applied.
func (s *Simulator) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := f.Times
	if n <= 0 {
		n = 1
	}
	s.faults = append(s.faults, &queuedFault{Fault: f, left: n})
}

// ClearFaults drops every queued fault.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// PendingFaults returns how many queued faults have hits left.
func (s *Simulator) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// Calls returns a copy of the call log.
func (s *Simulator) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallCount counts logged calls with the given op and host; "" matches any.
func (s *Simulator) CallCount(op, host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if (op == "" || c.Op == op) && (host == "" || c.Host == host) {
			n++
		}
	}
	return n
}

// Connection reports whether the channel is connected to the Chats account, and its scope id.
func (s *Simulator) Connection(channelID, amojoID string) (scopeID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scopeID, ok = s.connections[connKey{channelID, amojoID}]
	return scopeID, ok
}

// Account returns the account currently at host.
func (s *Simulator) Account(host string) (id int64, amojoID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[host]
	if a == nil {
		return 0, "", false
	}
	return a.id, a.amojoID, true
}

// Secrets returns every code, access token, refresh token, client secret, channel secret,
// revoke signature and received Chats API signature the simulator ever issued or knew,
// for tests that scan logs, events and errors for leaks.
func (s *Simulator) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.secrets)
}

// UsedRefreshTokenReplays counts refresh requests that presented an already-used refresh
// token, whether rejected or accepted under RefreshGrace. A client that never resends a
// spent token keeps it at 0; recovering a lost response costs exactly one.
func (s *Simulator) UsedRefreshTokenReplays() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replays
}

// accountLocked finds the account at host, creating it when AutoAccounts allows.
func (s *Simulator) accountLocked(host string) *account {
	if a := s.accounts[host]; a != nil {
		return a
	}
	if !s.o.AutoAccounts || !accountLike(host) {
		return nil
	}
	if _, gone := s.renamed[host]; gone {
		return nil
	}
	id, amojoID := derivedAccount(host)
	for s.idTaken(id) {
		id++
	}
	a := s.newAccountLocked(host, id, amojoID)
	s.accounts[host] = a
	s.byAmojo[amojoID] = a
	return a
}

func (s *Simulator) idTaken(id int64) bool {
	for _, a := range s.accounts {
		if a.id == id {
			return true
		}
	}
	return false
}

// accountLike accepts "<label>.<domain>.<tld>" hosts that are not Kommo service hosts.
func accountLike(host string) bool {
	if _, err := kommo.AmojoHost(host); err != nil || strings.Count(host, ".") < 2 {
		return false
	}
	label, _, _ := strings.Cut(host, ".")
	return label != "amojo" && label != "www" && !strings.HasPrefix(label, "api-")
}

// derivedAccount gives an auto-created account a stable id and amojo_id.
func derivedAccount(host string) (int64, string) {
	h := fnv.New64a()
	h.Write([]byte(host))
	sum := h.Sum64()
	id := int64(10_000_000 + sum%90_000_000)
	h.Write([]byte("amojo"))
	b := make([]byte, 0, 16)
	b = h.Sum(b)
	h.Write([]byte("more"))
	b = h.Sum(b)
	b[6] = b[6]&0x0f | 0x40 // shaped like a v4 UUID
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return id, x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// ceilSeconds rounds a wait up to whole seconds, at least 1, as Kommo's retry_after.
func ceilSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
