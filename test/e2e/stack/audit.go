package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// InjectFault queues a fault in the simulator (POST /_sim/fault).
func (s *Stack) InjectFault(ctx context.Context, f kommotest.Fault) error {
	body := map[string]any{"op": f.Op, "host": f.Host, "times": f.Times, "status": f.Status, "hint": f.Hint,
		"htmlBlocked": f.HTMLBlocked, "dropResponse": f.DropResponse}
	if f.RetryAfter > 0 {
		body["retryAfter"] = f.RetryAfter.String()
	}
	if f.Latency > 0 {
		body["latency"] = f.Latency.String()
	}
	return s.simPostJSON(ctx, "/_sim/fault", body, nil)
}

// ClearFaults drops every fault still queued in the simulator (DELETE /_sim/fault).
func (s *Stack) ClearFaults(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.SimURL+"/_sim/fault", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return &SimError{Path: "/_sim/fault", Status: resp.StatusCode}
	}
	return nil
}

// SimStats returns the simulator's OAuth counters (GET /_sim/stats).
func (s *Stack) SimStats(ctx context.Context) (kommotest.Stats, error) {
	var st kommotest.Stats
	err := s.simGET(ctx, "/_sim/stats", nil, &st)
	return st, err
}

// SimTokenStatus asks the simulator whether it would accept a token pair now, without
// using it (POST /_sim/token-status; the tokens travel in the body).
func (s *Stack) SimTokenStatus(ctx context.Context, access, refresh string) (kommotest.TokenStatus, error) {
	var st kommotest.TokenStatus
	err := s.simPostJSON(ctx, "/_sim/token-status", map[string]string{"access_token": access, "refresh_token": refresh}, &st)
	return st, err
}

// SimCodeStatus asks the simulator what became of a code (POST /_sim/code-status).
func (s *Stack) SimCodeStatus(ctx context.Context, code string) (kommotest.CodeStatus, error) {
	var st kommotest.CodeStatus
	err := s.simPostJSON(ctx, "/_sim/code-status", map[string]string{"code": code}, &st)
	return st, err
}

// simPostJSON posts body as JSON to a control route and decodes a JSON answer into out
// (nil: expect no content).
func (s *Stack) simPostJSON(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.SimURL+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &SimError{Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(answer))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("simulator %s: %w", path, err)
	}
	return nil
}
