package controllers

import (
	"math"
	"time"
)

const (
	// maxRefreshInterval bounds how long tokens go without a refresh: a refresh token
	// unused for three months dies, and a weekly refresh also catches long-lived problems
	// early.
	maxRefreshInterval = 7 * 24 * time.Hour
	// refreshJitterShare is the largest share of the lifetime subtracted at random so that
	// installations created together do not all refresh in the same second.
	refreshJitterShare = 0.10
	// expiredRefreshRetry is when to refresh a token that is expired when issued.
	expiredRefreshRetry = time.Minute
)

// RefreshTime is when to refresh a token that was issued at issued and expires at
// expires: at two thirds of its lifetime, minus a jitter of up to 10 % of the lifetime
// (jitter is a number in [0, 1)), at most maxRefreshInterval after issue, truncated to
// whole seconds. A token that is already expired or has no lifetime is due a minute
// after issue.
//
// Truncation matters: status stores whole seconds, and a requeue computed from an
// untruncated time would wake up just before the stored time and find nothing to do.
func RefreshTime(issued, expires time.Time, jitter float64) time.Time {
	lifetime := expires.Sub(issued)
	if lifetime <= 0 {
		// Already expired by our clock (skew, or a token Kommo issued expired): try again
		// soon, never in a loop.
		return issued.Add(expiredRefreshRetry).Truncate(time.Second)
	}
	jitter = math.Min(math.Max(jitter, 0), 1)
	at := expires.Add(-lifetime / 3).Add(-time.Duration(jitter * refreshJitterShare * float64(lifetime)))
	if limit := issued.Add(maxRefreshInterval); at.After(limit) {
		at = limit
	}
	return at.Truncate(time.Second)
}

// RefreshDue reports whether tokens must be refreshed now: the planned time has come, or
// someone asked for a refresh (requestedAt) after the last one (last) and that time has
// come. Requests compare in whole seconds, as status stores times. When not due, next is
// when to look again (zero: nothing planned).
func RefreshDue(now time.Time, planned *time.Time, requestedAt, last time.Time) (due bool, next time.Time) {
	if planned == nil || !now.Before(*planned) {
		return true, time.Time{}
	}
	next = *planned
	requested := requestedAt.Truncate(time.Second)
	if !requestedAt.IsZero() && requested.After(last.Truncate(time.Second)) {
		if !requested.After(now) {
			return true, time.Time{}
		}
		next = minTime(next, requested)
	}
	return false, next
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
