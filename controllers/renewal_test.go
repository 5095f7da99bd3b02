package controllers

import (
	"testing"
	"time"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

func TestRefreshTime(t *testing.T) {
	issued := time.Date(2026, 11, 21, 10, 0, 0, 500_000_000, time.UTC)
	cases := []struct {
		name     string
		lifetime time.Duration
		jitter   float64
		want     time.Time
	}{
		{"24h token, no jitter: at two thirds", 24 * time.Hour, 0, issued.Add(16 * time.Hour).Truncate(time.Second)},
		{"24h token, half jitter: 5 % earlier", 24 * time.Hour, 0.5, issued.Add(16*time.Hour - 72*time.Minute).Truncate(time.Second)},
		{"jitter above 1 is clamped", 24 * time.Hour, 5, issued.Add(16*time.Hour - 144*time.Minute).Truncate(time.Second)},
		{"one-year token: weekly at most", 365 * 24 * time.Hour, 0, issued.Add(7 * 24 * time.Hour).Truncate(time.Second)},
		{"9s token", 9 * time.Second, 0, issued.Add(6 * time.Second).Truncate(time.Second)},
		{"expired token: a minute later, never a loop", -time.Hour, 0, issued.Add(time.Minute).Truncate(time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := RefreshTime(issued, issued.Add(tc.lifetime), tc.jitter)
			if !got.Equal(tc.want) {
				t.Errorf("RefreshTime = %s, want %s", got, tc.want)
			}
			if got.Nanosecond() != 0 {
				t.Errorf("RefreshTime %s is not whole seconds", got)
			}
			if tc.lifetime > 0 && !got.Before(issued.Add(tc.lifetime)) {
				t.Errorf("RefreshTime %s is not before expiry", got)
			}
		})
	}
}

func TestRefreshDue(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 500_000_000, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Minute)
	cases := []struct {
		name            string
		planned         *time.Time
		requested, last time.Time
		want            bool
		next            time.Time
	}{
		{"never planned", nil, time.Time{}, time.Time{}, true, time.Time{}},
		{"planned later", &later, time.Time{}, earlier, false, later},
		{"planned now", &now, time.Time{}, earlier, true, time.Time{}},
		{"planned earlier", &earlier, time.Time{}, earlier, true, time.Time{}},
		{"requested after last refresh", &later, now, earlier, true, time.Time{}},
		{"requested before last refresh", &later, earlier, now, false, later},
		{"requested in the same second as the last refresh", &later, now.Add(-300 * time.Millisecond), now.Add(-400 * time.Millisecond), false, later},
		{"requested in the future", &later, now.Add(2 * time.Second), earlier, false, now.Add(2 * time.Second).Truncate(time.Second)},
	}
	for _, tc := range cases {
		due, next := RefreshDue(now, tc.planned, tc.requested, tc.last)
		if due != tc.want || !next.Equal(tc.next) {
			t.Errorf("%s: RefreshDue = %v, %s; want %v, %s", tc.name, due, next, tc.want, tc.next)
		}
	}
}

func TestBackoff(t *testing.T) {
	cases := []struct {
		class      failureClass
		attempts   int32
		retryAfter time.Duration
		want       time.Duration
	}{
		{failureTransient, 0, 0, 5 * time.Second},
		{failureTransient, 1, 0, 5 * time.Second},
		{failureTransient, 2, 0, 10 * time.Second},
		{failureTransient, 8, 0, 10 * time.Minute},
		{failureTransient, 1000, 0, 10 * time.Minute},
		{failureTransient, 1, 30 * time.Second, 30 * time.Second},
		{failureConfig, 1, 0, time.Minute},
		{failureConfig, 10, 0, time.Hour},
		{failureBlocked, 1, 0, 5 * time.Minute},
		{failureBlocked, 3, 0, 20 * time.Minute},
		{failureTerminal, 1, 0, forever},
	}
	for _, tc := range cases {
		if got := Backoff(tc.class, tc.attempts, tc.retryAfter); got != tc.want {
			t.Errorf("Backoff(%d, %d, %s) = %s, want %s", tc.class, tc.attempts, tc.retryAfter, got, tc.want)
		}
	}
}

func TestPersistedBackoffPerConcern(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var entries []kommov1.Backoff
	var wait time.Duration
	entries, wait = RecordFailure(entries, concernChannel, kommov1.ReasonKommoUnavailable, "amojo 503", "v1", now, 1, 0)
	if wait != 5*time.Second {
		t.Errorf("first transient wait %s, want 5s", wait)
	}
	entries, wait = RecordFailure(entries, concernChannel, kommov1.ReasonKommoUnavailable, "amojo 503", "v1", now, 1, 0)
	if wait != 10*time.Second {
		t.Errorf("second transient wait %s, want 10s", wait)
	}
	// One concern's failures never delay another.
	if left := BackoffLeft(entries, concernRefresh, "v1", now, 1); left != 0 {
		t.Errorf("refresh waits %s for the channel's failures", left)
	}
	if left := BackoffLeft(entries, concernChannel, "v1", now.Add(4*time.Second), 1); left != 6*time.Second {
		t.Errorf("channel waits %s, want 6s", left)
	}
	// A configuration change ends a configuration backoff at once, and starts the count over.
	entries, _ = RecordFailure(entries, concernRefresh, kommov1.ReasonInvalidClient, "401", "v1", now, 1, 0)
	if left := BackoffLeft(entries, concernRefresh, "v1", now, 1); left != time.Minute {
		t.Errorf("InvalidClient waits %s, want a minute", left)
	}
	if left := BackoffLeft(entries, concernRefresh, "v2", now, 1); left != 0 {
		t.Errorf("a changed configuration still waits %s", left)
	}
	entries, _ = RecordFailure(entries, concernRefresh, kommov1.ReasonInvalidClient, "401", "v2", now, 1, 0)
	if b := findBackoff(entries, concernRefresh); b.FailedAttempts != 1 {
		t.Errorf("attempts after a configuration change = %d, want 1", b.FailedAttempts)
	}
	// Kommo's retry_after is never cut short; a terminal failure waits for a new grant.
	if _, wait = RecordFailure(entries, concernAccount, kommov1.ReasonRateLimited, "429", "v2", now, 0.01, 30*time.Second); wait != 30*time.Second {
		t.Errorf("wait %s, want retry_after 30s", wait)
	}
	entries, _ = RecordFailure(entries, concernRefresh, kommov1.ReasonReinstallRequired, "revoked", "v2", now, 1, 0)
	if left := BackoffLeft(entries, concernRefresh, "v3", now.Add(1000*time.Hour), 1); left != forever {
		t.Errorf("a revoked refresh token waits %s, want forever", left)
	}
	entries = ClearFailure(entries, concernRefresh)
	if findBackoff(entries, concernRefresh) != nil || findBackoff(entries, concernChannel) == nil {
		t.Errorf("ClearFailure cleared the wrong entries: %+v", entries)
	}
}
