package kommotest

import "time"

// Stats counts what the simulator's OAuth server did, for suites that audit a client's
// use of single-use credentials after a run. A faithful client keeps BurntRefreshTokens
// and CodesExchangedTwice at 0; each lost refresh response it recovers costs one
// Recovery (under RefreshGrace).
type Stats struct {
	// Exchanges and Refreshes count codes and refresh tokens accepted, including those
	// whose response a fault then dropped.
	Exchanges int `json:"exchanges"`
	Refreshes int `json:"refreshes"`
	// DroppedResponses counts requests applied whose answer a fault dropped.
	DroppedResponses int `json:"droppedResponses"`
	// Recoveries counts used refresh tokens accepted again under RefreshGrace because
	// their successor was never used (a lost response recovered).
	Recoveries int `json:"recoveries"`
	// BurntRefreshTokens counts used refresh tokens presented after their successor had
	// been used: the client refreshed from a stale copy of its tokens.
	BurntRefreshTokens int `json:"burntRefreshTokens"`
	// CodesExchangedTwice counts exchange requests for a code already exchanged.
	CodesExchangedTwice int `json:"codesExchangedTwice"`
}

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Token states reported by TokenStatus.
const (
	TokenLive        = "live"        // accepted now, as a first use
	TokenRecoverable = "recoverable" // a used refresh token RefreshGrace still accepts once
	TokenUsed        = "used"        // a used refresh token Kommo rejects
	TokenRevoked     = "revoked"
	TokenExpired     = "expired"
	TokenUnknown     = "unknown"
)

// TokenStatus says, without using them, whether Kommo would accept a token pair now.
type TokenStatus struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
	// SamePair: both tokens come from one token response.
	SamePair bool `json:"samePair"`
	// Install is the issue order (CodeStatus.Seq) of the code the refresh token's
	// grant descends from; 0 when unknown.
	Install int `json:"install"`
}

// TokenStatus reports on an access and a refresh token without consuming either.
func (s *Simulator) TokenStatus(access, refresh string) TokenStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	var st TokenStatus
	a := s.access[access]
	switch {
	case a == nil:
		st.Access = TokenUnknown
	case a.revoked:
		st.Access = TokenRevoked
	case !now.Before(a.accessExp):
		st.Access = TokenExpired
	default:
		st.Access = TokenLive
	}
	g := s.refresh[refresh]
	switch {
	case g == nil:
		st.Refresh = TokenUnknown
	case g.revoked:
		st.Refresh = TokenRevoked
	case !now.Before(g.refreshExp):
		st.Refresh = TokenExpired
	case !g.refreshUsed:
		st.Refresh = TokenLive
	case s.o.RefreshGrace && g.next != nil && !g.next.used && !g.next.revoked:
		st.Refresh = TokenRecoverable
	default:
		st.Refresh = TokenUsed
	}
	if g != nil {
		st.SamePair = a == g
		if g.origin != nil {
			st.Install = g.origin.seq
		}
	}
	return st
}

// CodeStatus is what became of an authorization code.
type CodeStatus struct {
	// Seq is the code's issue order, 1-based; 0 for a code this simulator did not issue
	// (unknown, or imported with a State).
	Seq int `json:"seq"`
	// Exchanged: the code was exchanged for tokens. Reuses counts the exchanges
	// attempted after that.
	Exchanged bool `json:"exchanged"`
	Reuses    int  `json:"reuses"`
	// ExchangedAt is when the exchange was accepted (simulator clock).
	ExchangedAt time.Time `json:"exchangedAt,omitzero"`
}

// CodeStatus reports on an authorization code without consuming it.
func (s *Simulator) CodeStatus(code string) CodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.codes[code]
	if c == nil {
		return CodeStatus{}
	}
	return CodeStatus{Seq: c.seq, Exchanged: c.exchanges > 0, Reuses: c.reuses, ExchangedAt: c.exchangedAt}
}
