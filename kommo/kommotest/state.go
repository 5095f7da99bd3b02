package kommotest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is what a Simulator knows that outlives a request: the registered integrations
// and channels, the accounts (and the hosts they left), the authorization codes, every
// token pair issued and the channel connections. Export and Import carry it from one
// simulator to the next (a simulator in another process, fixtures captured from an older
// release of the operator), so that tokens issued by one keep working in the next — and
// spent, revoked or expired ones stay so. The call log, queued faults, rate limits, the
// replay counter and the audit (Stats, CodeStatus, the Install of TokenStatus) are not
// state: they start afresh.
type State struct {
	// JWTKey signs the access tokens the simulator mints.
	JWTKey []byte `json:"jwtKey"`
	// NextID is the last pipeline or source id handed out.
	NextID       int64              `json:"nextID"`
	Integrations []IntegrationState `json:"integrations,omitempty"`
	Accounts     []AccountState     `json:"accounts,omitempty"`
	// Renamed maps a host an account left to the host it moved to.
	Renamed     map[string]string `json:"renamed,omitempty"`
	Channels    []ChannelState    `json:"channels,omitempty"`
	Codes       []CodeState       `json:"codes,omitempty"`
	Grants      []GrantState      `json:"grants,omitempty"`
	Connections []ConnectionState `json:"connections,omitempty"`
}

// IntegrationState is one integration as registered in Kommo's developer UI.
type IntegrationState struct {
	ClientID        string `json:"clientID"`
	ClientSecret    string `json:"clientSecret"`
	RedirectURI     string `json:"redirectURI"`
	WidgetCode      string `json:"widgetCode,omitempty"`
	MultipleSources bool   `json:"multipleSources,omitempty"`
}

// AccountState is one account. Host and ID identify it in codes and grants; Replaced
// marks an account that AddAccount replaced at its host: its tokens work nowhere.
type AccountState struct {
	Host      string          `json:"host"`
	ID        int64           `json:"id"`
	AmojoID   string          `json:"amojoID"`
	Replaced  bool            `json:"replaced,omitempty"`
	Pipelines []PipelineState `json:"pipelines,omitempty"`
	// Sources of every integration in the account, in the order Kommo lists them.
	Sources []SourceState `json:"sources,omitempty"`
}

// PipelineState is one lead pipeline of an account.
type PipelineState struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	IsMain    bool   `json:"isMain,omitempty"`
	IsArchive bool   `json:"isArchive,omitempty"`
}

// SourceState is one source of an integration in an account.
type SourceState struct {
	ClientID   string `json:"clientID"`
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PipelineID int64  `json:"pipelineID"`
	ExternalID string `json:"externalID"`
	Default    bool   `json:"default,omitempty"`
	OriginCode string `json:"originCode,omitempty"`
}

// ChannelState is one Chats API channel; ClientID is the integration it is bound to.
type ChannelState struct {
	ID       string `json:"id"`
	Secret   string `json:"secret"`
	ClientID string `json:"clientID,omitempty"`
}

// CodeState is one authorization code.
type CodeState struct {
	Code      string    `json:"code"`
	Account   string    `json:"account"`
	AccountID int64     `json:"accountID"`
	ClientID  string    `json:"clientID"`
	ExpiresAt time.Time `json:"expiresAt"`
	Used      bool      `json:"used,omitempty"`
}

// GrantState is one access/refresh pair (RefreshToken "" for a long-lived token). Next
// is the refresh token of the pair its refresh produced.
type GrantState struct {
	Account          string    `json:"account"`
	AccountID        int64     `json:"accountID"`
	ClientID         string    `json:"clientID"`
	AccessToken      string    `json:"accessToken"`
	RefreshToken     string    `json:"refreshToken,omitempty"`
	AccessExpiresAt  time.Time `json:"accessExpiresAt"`
	RefreshExpiresAt time.Time `json:"refreshExpiresAt,omitzero"`
	Used             bool      `json:"used,omitempty"`
	RefreshUsed      bool      `json:"refreshUsed,omitempty"`
	Revoked          bool      `json:"revoked,omitempty"`
	Next             string    `json:"next,omitempty"`
}

// ConnectionState is one connected channel in one Chats account.
type ConnectionState struct {
	ChannelID string `json:"channelID"`
	AmojoID   string `json:"amojoID"`
	ScopeID   string `json:"scopeID"`
}

// Export returns the simulator's state, sorted so that equal states export equally.
func (s *Simulator) Export() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{JWTKey: slices.Clone(s.jwtKey), NextID: s.nextID}
	for _, in := range s.integrations {
		st.Integrations = append(st.Integrations, IntegrationState{in.clientID, in.secret, in.redirectURI, in.widgetCode, in.multipleSources})
	}
	seen := map[*account]bool{}
	addAccount := func(a *account) {
		if seen[a] {
			return
		}
		seen[a] = true
		as := AccountState{Host: a.host, ID: a.id, AmojoID: a.amojoID, Replaced: s.accounts[a.host] != a}
		for _, p := range a.pipelines {
			as.Pipelines = append(as.Pipelines, PipelineState{p.ID, p.Name, p.IsMain, p.IsArchive})
		}
		for _, src := range a.sources {
			as.Sources = append(as.Sources, SourceState{src.clientID, src.ID, src.Name, src.PipelineID, src.ExternalID, src.Default, src.OriginCode})
		}
		st.Accounts = append(st.Accounts, as)
	}
	for _, a := range s.accounts {
		addAccount(a)
	}
	if len(s.renamed) > 0 {
		st.Renamed = map[string]string{}
		for from, to := range s.renamed {
			st.Renamed[from] = to
		}
	}
	for _, ch := range s.channels {
		st.Channels = append(st.Channels, ChannelState{ch.id, ch.secret, ch.clientID})
	}
	for code, c := range s.codes {
		addAccount(c.acct)
		st.Codes = append(st.Codes, CodeState{code, c.acct.host, c.acct.id, c.clientID, c.expires, c.used})
	}
	for _, g := range s.access {
		addAccount(g.acct)
		gs := GrantState{
			Account: g.acct.host, AccountID: g.acct.id, ClientID: g.clientID,
			AccessToken: g.access, RefreshToken: g.refresh, AccessExpiresAt: g.accessExp, RefreshExpiresAt: g.refreshExp,
			Used: g.used, RefreshUsed: g.refreshUsed, Revoked: g.revoked,
		}
		if g.next != nil {
			gs.Next = g.next.refresh
		}
		st.Grants = append(st.Grants, gs)
	}
	for k, scope := range s.connections {
		st.Connections = append(st.Connections, ConnectionState{k.channelID, k.amojoID, scope})
	}
	slices.SortFunc(st.Integrations, func(a, b IntegrationState) int { return cmp.Compare(a.ClientID, b.ClientID) })
	slices.SortFunc(st.Accounts, func(a, b AccountState) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.ID, b.ID), cmp.Compare(a.AmojoID, b.AmojoID))
	})
	slices.SortFunc(st.Channels, func(a, b ChannelState) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Codes, func(a, b CodeState) int { return cmp.Compare(a.Code, b.Code) })
	slices.SortFunc(st.Grants, func(a, b GrantState) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), a.AccessExpiresAt.Compare(b.AccessExpiresAt), cmp.Compare(a.AccessToken, b.AccessToken))
	})
	slices.SortFunc(st.Connections, func(a, b ConnectionState) int {
		return cmp.Or(cmp.Compare(a.ChannelID, b.ChannelID), cmp.Compare(a.AmojoID, b.AmojoID))
	})
	return st
}

// Import replaces everything Export covers with st; the call log, faults and rate limits
// are kept. It fails, changing nothing, when st refers to what it does not hold (an
// account, a channel, a successor pair) or holds something twice.
func (s *Simulator) Import(st State) error {
	if len(st.JWTKey) == 0 {
		return errors.New("kommotest: state has no JWT key")
	}
	n := New(s.o) // build into a fresh simulator, then swap: a failed import changes nothing
	n.jwtKey = slices.Clone(st.JWTKey)
	n.nextID = st.NextID
	secrets := []string{}
	for _, in := range st.Integrations {
		if in.ClientID == "" || n.integrations[in.ClientID] != nil {
			return fmt.Errorf("kommotest: integration %q is empty or twice in the state", in.ClientID)
		}
		n.integrations[in.ClientID] = &integration{clientID: in.ClientID, secret: in.ClientSecret, redirectURI: in.RedirectURI,
			widgetCode: in.WidgetCode, multipleSources: in.MultipleSources}
		secrets = append(secrets, in.ClientSecret)
	}
	type accountKey struct {
		host string
		id   int64
	}
	accounts := map[accountKey]*account{}
	for _, a := range st.Accounts {
		k := accountKey{a.Host, a.ID}
		if accounts[k] != nil {
			return fmt.Errorf("kommotest: account %s (%d) twice in the state", a.Host, a.ID)
		}
		acct := &account{host: a.Host, id: a.ID, amojoID: a.AmojoID}
		for _, p := range a.Pipelines {
			acct.pipelines = append(acct.pipelines, &Pipeline{ID: p.ID, Name: p.Name, IsMain: p.IsMain, IsArchive: p.IsArchive})
		}
		for _, src := range a.Sources {
			acct.sources = append(acct.sources, &storedSource{clientID: src.ClientID, Source: Source{
				ID: src.ID, Name: src.Name, PipelineID: src.PipelineID, ExternalID: src.ExternalID, Default: src.Default, OriginCode: src.OriginCode,
			}})
		}
		accounts[k] = acct
		if a.Replaced {
			continue
		}
		if n.accounts[a.Host] != nil {
			return fmt.Errorf("kommotest: two current accounts at %s in the state", a.Host)
		}
		n.accounts[a.Host] = acct
		n.byAmojo[a.AmojoID] = acct
	}
	lookup := func(host string, id int64) (*account, error) {
		if a := accounts[accountKey{host, id}]; a != nil {
			return a, nil
		}
		return nil, fmt.Errorf("kommotest: the state refers to account %s (%d), which it does not hold", host, id)
	}
	for from, to := range st.Renamed {
		n.renamed[from] = to
	}
	for _, ch := range st.Channels {
		if ch.ID == "" || n.channels[ch.ID] != nil {
			return fmt.Errorf("kommotest: channel %q is empty or twice in the state", ch.ID)
		}
		n.channels[ch.ID] = &channel{ch.ID, ch.Secret, ch.ClientID}
		secrets = append(secrets, ch.Secret)
	}
	for _, c := range st.Codes {
		a, err := lookup(c.Account, c.AccountID)
		if err != nil {
			return err
		}
		if n.codes[c.Code] != nil {
			return errors.New("kommotest: a code is twice in the state")
		}
		n.codes[c.Code] = &authCode{acct: a, clientID: c.ClientID, expires: c.ExpiresAt, used: c.Used}
		secrets = append(secrets, c.Code)
	}
	for _, gs := range st.Grants {
		a, err := lookup(gs.Account, gs.AccountID)
		if err != nil {
			return err
		}
		if gs.AccessToken == "" || n.access[gs.AccessToken] != nil || (gs.RefreshToken != "" && n.refresh[gs.RefreshToken] != nil) {
			return errors.New("kommotest: a grant without an access token, or a token twice in the state")
		}
		g := &grant{
			acct: a, clientID: gs.ClientID, access: gs.AccessToken, refresh: gs.RefreshToken,
			accessExp: gs.AccessExpiresAt, refreshExp: gs.RefreshExpiresAt,
			used: gs.Used, refreshUsed: gs.RefreshUsed, revoked: gs.Revoked,
		}
		n.access[g.access] = g
		if g.refresh != "" {
			n.refresh[g.refresh] = g
		}
		secrets = append(secrets, g.access, g.refresh)
	}
	for _, gs := range st.Grants {
		if gs.Next == "" {
			continue
		}
		next := n.refresh[gs.Next]
		if next == nil || gs.RefreshToken == "" {
			return errors.New("kommotest: a grant's successor is not in the state")
		}
		n.refresh[gs.RefreshToken].next = next
	}
	for _, c := range st.Connections {
		if n.channels[c.ChannelID] == nil {
			return fmt.Errorf("kommotest: connection of channel %s, which the state does not hold", c.ChannelID)
		}
		n.connections[connKey{c.ChannelID, c.AmojoID}] = c.ScopeID
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtKey, s.nextID = n.jwtKey, n.nextID
	s.integrations, s.accounts, s.byAmojo, s.renamed = n.integrations, n.accounts, n.byAmojo, n.renamed
	s.channels, s.codes, s.access, s.refresh, s.connections = n.channels, n.codes, n.access, n.refresh, n.connections
	for _, v := range secrets {
		if v != "" {
			s.secrets = append(s.secrets, v)
		}
	}
	return nil
}

// Long-lived tokens' lifetimes, as Kommo's Keys tab offers them.
const (
	minLongLivedLifetime = 24 * time.Hour
	maxLongLivedLifetime = 5 * 365 * 24 * time.Hour
)

// IssueLongLivedToken creates a long-lived token of a private integration for an account,
// as the integration's Keys tab does: an access token (a JWT like the others) that
// expires after lifetime (1 day to 5 years) and has no refresh token.
func (s *Simulator) IssueLongLivedToken(accountHost, clientID string, lifetime time.Duration) (string, error) {
	if lifetime < minLongLivedLifetime || lifetime > maxLongLivedLifetime {
		return "", fmt.Errorf("kommotest: a long-lived token lives 1 day to 5 years, not %s", lifetime)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountHost)
	if a == nil {
		return "", fmt.Errorf("kommotest: no account at %q", accountHost)
	}
	if s.integrations[clientID] == nil {
		return "", fmt.Errorf("kommotest: no integration %q", clientID)
	}
	now := s.o.Now()
	g := &grant{acct: a, clientID: clientID, accessExp: now.Add(lifetime)}
	g.access = s.jwtLocked(a, clientID, now, g.accessExp)
	s.access[g.access] = g
	s.secrets = append(s.secrets, g.access)
	return g.access, nil
}
