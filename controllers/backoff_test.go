package controllers

import (
	"testing"
	"time"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

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

// A 404 means no such account at the OAuth and account APIs, and an unknown channel only
// at the Chats API.
func TestReasonsByAPI(t *testing.T) {
	notFound := &kommo.Error{Op: "refresh", Host: "acme.kommo.com", Status: 404, Kind: kommo.KindNotFound}
	if r, _ := reasonOf(notFound); r != kommov1.ReasonAccountNotFound {
		t.Errorf("a 404 at the account host is %s", r)
	}
	if r, _ := chatReasonOf(notFound); r != kommov1.ReasonChannelNotFound {
		t.Errorf("a 404 at amojo is %s", r)
	}
	for kind, want := range map[kommo.Kind]string{
		kommo.KindBlocked: kommov1.ReasonBlocked, kommo.KindRateLimited: kommov1.ReasonRateLimited,
		kommo.KindInvalidClient: kommov1.ReasonInvalidClient, kommo.KindTokenRevoked: kommov1.ReasonReinstallRequired,
		kommo.KindTransient: kommov1.ReasonKommoUnavailable, kommo.KindInvalidSignature: kommov1.ReasonInvalidSignature,
	} {
		if r, _ := chatReasonOf(&kommo.Error{Kind: kind}); r != want {
			t.Errorf("%s → %s, want %s", kind, r, want)
		}
	}
}
