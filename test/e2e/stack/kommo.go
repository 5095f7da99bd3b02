package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// IssueCode asks the simulator for an authorization code for account, as Kommo's consent
// screen would issue one.
func (s *Stack) IssueCode(ctx context.Context, account string) (string, error) {
	code, err := s.simPOST(ctx, "/_sim/code", url.Values{"account": {account}, "client_id": {s.ClientID}})
	if err != nil {
		return "", fmt.Errorf("getting a code for %s from the simulator: %w", account, err)
	}
	s.remember("authorization code", code)
	return code, nil
}

// RedirectURL is the webhook's install route for query.
func (s *Stack) RedirectURL(query url.Values) string {
	return s.WebhookURL + "/kommo/" + s.Namespace + "/" + s.Integration + "/redirect?" + query.Encode()
}

// RevokeURL is the webhook's "access revoked" route for query.
func (s *Stack) RevokeURL(query url.Values) string {
	return s.WebhookURL + "/kommo/" + s.Namespace + "/" + s.Integration + "/revoke?" + query.Encode()
}

// Redirect sends Kommo's install redirect with query to the webhook and returns the
// status it answered.
func (s *Stack) Redirect(ctx context.Context, query url.Values) (int, error) {
	return s.webhookGET(ctx, s.RedirectURL(query))
}

// RevokeHook sends Kommo's "access revoked" hook with query to the webhook and returns
// the status it answered.
func (s *Stack) RevokeHook(ctx context.Context, query url.Values) (int, error) {
	if sig := query.Get("signature"); sig != "" {
		s.remember("revoke signature", sig)
	}
	return s.webhookGET(ctx, s.RevokeURL(query))
}

// Install does what Kommo does when an account admin installs the integration from
// Kommo's UI: a new code from the simulator, then the server-to-server redirect with
// code, referer and from_widget. It fails unless the webhook recorded the install.
func (s *Stack) Install(ctx context.Context, account string) error {
	code, err := s.IssueCode(ctx, account)
	if err != nil {
		return err
	}
	status, err := s.Redirect(ctx, url.Values{"code": {code}, "referer": {account}, "from_widget": {"1"}})
	if err != nil {
		return fmt.Errorf("install redirect for %s: %w", account, err)
	}
	if status != http.StatusOK && status != http.StatusAccepted {
		return fmt.Errorf("install redirect for %s: the webhook answered %d, want 200 (or 202)", account, status)
	}
	return nil
}

// RevokeQuery disables the integration in account on the simulator's side (its tokens
// die, its channel is disconnected) and returns the signed hook query Kommo would send.
func (s *Stack) RevokeQuery(ctx context.Context, account string) (url.Values, error) {
	raw, err := s.simPOST(ctx, "/_sim/revoke", url.Values{"account": {account}, "client_id": {s.ClientID}})
	if err != nil {
		return nil, fmt.Errorf("revoking %s in the simulator: %w", account, err)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("the simulator's revoke query: %w", err)
	}
	s.remember("revoke signature", q.Get("signature"))
	return q, nil
}

// Revoke does what Kommo does when an account disables the integration: the "access
// revoked" hook, signed, to the webhook. It fails unless the webhook recorded it.
func (s *Stack) Revoke(ctx context.Context, account string) error {
	q, err := s.RevokeQuery(ctx, account)
	if err != nil {
		return err
	}
	status, err := s.RevokeHook(ctx, q)
	if err != nil {
		return fmt.Errorf("revoke hook for %s: %w", account, err)
	}
	if status != http.StatusOK && status != http.StatusAccepted {
		return fmt.Errorf("revoke hook for %s: the webhook answered %d, want 200 (or 202)", account, status)
	}
	return nil
}

// Connection is what the simulator's Chats API knows of the channel in one account.
type Connection struct {
	Connected bool   `json:"connected"`
	ScopeID   string `json:"scope_id"`
}

// SimConnection asks the simulator whether the integration's channel is connected in
// account.
func (s *Stack) SimConnection(ctx context.Context, account string) (Connection, error) {
	var c Connection
	err := s.simGET(ctx, "/_sim/connection", url.Values{"channel": {s.ChannelID}, "account": {account}}, &c)
	return c, err
}

// Account is an account as the simulator knows it.
type Account struct {
	ID      int64  `json:"id"`
	AmojoID string `json:"amojo_id"`
}

// SimAccount returns the simulator's account at host.
func (s *Stack) SimAccount(ctx context.Context, account string) (Account, error) {
	var a Account
	err := s.simGET(ctx, "/_sim/account", url.Values{"account": {account}}, &a)
	return a, err
}

// SimCalls returns every Kommo API request the simulator received.
func (s *Stack) SimCalls(ctx context.Context) ([]kommotest.Call, error) {
	var calls []kommotest.Call
	err := s.simGET(ctx, "/_sim/calls", nil, &calls)
	return calls, err
}

// SaveSimCalls writes the simulator's call log to Dir/kommosim-calls.json, for diagnostics.
func (s *Stack) SaveSimCalls(ctx context.Context) (string, error) {
	calls, err := s.SimCalls(ctx)
	if err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(calls, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.Dir, "kommosim-calls.json")
	return path, os.WriteFile(path, data, 0o600)
}

// CountCalls counts the simulator's calls with op and host ("" matches any) that
// succeeded.
func CountCalls(calls []kommotest.Call, op, host string) int {
	n := 0
	for _, c := range calls {
		if (op == "" || c.Op == op) && (host == "" || c.Host == host) && c.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// webhookGET sends one GET to the webhook the way Kommo's servers do (no browser headers)
// and returns the status. A 429 from the webhook's per-IP limit (every request here comes
// from 127.0.0.1) is retried until ctx ends: that is the harness sharing one IP, not Kommo.
func (s *Stack) webhookGET(ctx context.Context, u string) (int, error) {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("User-Agent", "amoCRM-oAuth-client/1.0")
		resp, err := s.http.Do(req)
		if err != nil {
			return 0, redactURLError(err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			return resp.StatusCode, nil
		}
		select {
		case <-ctx.Done():
			return resp.StatusCode, nil
		case <-time.After(250 * time.Millisecond): // the limiter refills 5 per second
		}
	}
}

// redactURLError drops the URL, which carries the code or the signature, from a
// transport error.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s webhook: %w", ue.Op, ue.Err)
	}
	return err
}

func (s *Stack) simPOST(ctx context.Context, path string, q url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.SimURL+path+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func (s *Stack) simGET(ctx context.Context, path string, q url.Values, v any) error {
	u := s.SimURL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &SimError{Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	return json.Unmarshal(body, v)
}

// SimError is a control API request the simulator refused.
type SimError struct {
	Path   string
	Status int
	Body   string
}

func (e *SimError) Error() string {
	return fmt.Sprintf("simulator %s: %d %s", e.Path, e.Status, e.Body)
}

// SimSource is a source as the simulator's Sources API holds it.
type SimSource struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PipelineID int64  `json:"pipeline_id"`
	ExternalID string `json:"external_id"`
	Default    bool   `json:"default"`
	OriginCode string `json:"origin_code"`
}

// SimSources returns the integration's sources in account, as the simulator has them.
func (s *Stack) SimSources(ctx context.Context, account string) ([]SimSource, error) {
	var out []SimSource
	err := s.simGET(ctx, "/_sim/sources", url.Values{"account": {account}, "client_id": {s.ClientID}}, &out)
	return out, err
}
