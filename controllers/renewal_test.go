package controllers

import (
	"testing"
	"time"
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
