package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// The concerns of an installation that call Kommo, each with its own persisted backoff.
const (
	concernAttempt    = "Attempt"    // exchanging the latest install's code
	concernRefresh    = "Refresh"    // refreshing the grant
	concernRevocation = "Revocation" // confirming a revocation hook with Kommo
	concernAccount    = "Account"    // looking up the account id and amojo_id
	concernChannel    = "Channel"    // connecting (or switching) the chat channel
	concernSources    = "Sources"    // keeping the declared lead sources
	concernDisconnect = "Disconnect" // disconnecting on deletion
)

// failureClass groups Kommo failures by how long to wait before the next attempt.
type failureClass int

const (
	// failureTransient: 5xx, timeouts, connection errors, 429.
	failureTransient failureClass = iota
	// failureConfig: Kommo rejected our configuration (client secret, channel secret,
	// channel id); a person has to fix something, so retries are rare, and a change of
	// the configuration ends the wait.
	failureConfig
	// failureBlocked: an HTML 403, Kommo's IP block. Hammering it extends the block.
	failureBlocked
	// failureTerminal: only a new grant helps (the refresh token is revoked).
	failureTerminal
)

// Backoff is the wait after the attempts-th consecutive failure: exponential from a base
// that depends on the class, capped, and never shorter than what Kommo asked for
// (retryAfter, from a 429). A terminal failure waits forever.
func Backoff(class failureClass, attempts int32, retryAfter time.Duration) time.Duration {
	base, limit := 5*time.Second, 10*time.Minute
	switch class {
	case failureConfig:
		base, limit = time.Minute, time.Hour
	case failureBlocked:
		base, limit = 5*time.Minute, time.Hour
	case failureTerminal:
		return forever
	}
	d := limit
	if attempts < 1 {
		attempts = 1
	}
	if attempts <= 20 {
		d = min(base<<(attempts-1), limit)
	}
	return max(d, retryAfter)
}

// forever is the wait of a terminal failure.
const forever = time.Duration(1<<63 - 1)

// chatReasonOf is reasonOf for the Chats API, where a 404 is an unknown channel.
func chatReasonOf(err error) (string, failureClass) {
	if kommo.KindOf(err) == kommo.KindNotFound {
		return kommov1.ReasonChannelNotFound, failureConfig
	}
	return reasonOf(err)
}

// reasonOf maps an error of Kommo's OAuth or account API to a condition reason and a
// backoff class; a 404 there means no account at that host.
func reasonOf(err error) (string, failureClass) {
	switch kommo.KindOf(err) {
	case kommo.KindRateLimited:
		return kommov1.ReasonRateLimited, failureTransient
	case kommo.KindBlocked:
		return kommov1.ReasonBlocked, failureBlocked
	case kommo.KindInvalidClient:
		return kommov1.ReasonInvalidClient, failureConfig
	case kommo.KindInvalidSignature:
		return kommov1.ReasonInvalidSignature, failureConfig
	case kommo.KindNotFound:
		return kommov1.ReasonAccountNotFound, failureConfig
	case kommo.KindTokenRevoked:
		return kommov1.ReasonReinstallRequired, failureTerminal
	case kommo.KindBadRequest, kommo.KindInvalidCode, kommo.KindUnauthorized:
		return kommov1.ReasonKommoRejected, failureConfig
	}
	return kommov1.ReasonKommoUnavailable, failureTransient
}

// classOfReason is the backoff class of a reason recorded by reasonOf.
func classOfReason(reason string) failureClass {
	switch reason {
	case kommov1.ReasonBlocked:
		return failureBlocked
	case kommov1.ReasonReinstallRequired:
		return failureTerminal
	case kommov1.ReasonInvalidClient, kommov1.ReasonInvalidSignature, kommov1.ReasonChannelNotFound,
		kommov1.ReasonKommoRejected, kommov1.ReasonAccountNotFound:
		return failureConfig
	}
	return failureTransient
}

// findBackoff returns concern's entry, nil when it is not failing.
func findBackoff(entries []kommov1.Backoff, concern string) *kommov1.Backoff {
	for i := range entries {
		if entries[i].Concern == concern {
			return &entries[i]
		}
	}
	return nil
}

// BackoffLeft is how long concern must still wait before calling Kommo again: zero when it
// is not failing, or when the configuration changed since its failures (configVersion
// differs), so that a fix is tried at once. scale multiplies the wait (tests shrink it).
func BackoffLeft(entries []kommov1.Backoff, concern, configVersion string, now time.Time, scale float64) time.Duration {
	b := findBackoff(entries, concern)
	if b == nil {
		return 0
	}
	class := classOfReason(b.Reason)
	switch {
	case class == failureTerminal:
		return forever // no configuration revives a revoked refresh token
	case b.ConfigVersion != configVersion:
		return 0
	}
	wait := Backoff(class, b.FailedAttempts, 0)
	if scale > 0 {
		wait = time.Duration(float64(wait) * scale)
	}
	return max(b.LastFailureTime.Add(wait).Sub(now), 0)
}

// RecordFailure counts one more failure of concern and returns the updated entries and
// the wait before the next attempt. A configuration change since the earlier failures
// starts the count over.
func RecordFailure(entries []kommov1.Backoff, concern, reason, message, configVersion string, now time.Time, scale float64, retryAfter time.Duration) ([]kommov1.Backoff, time.Duration) {
	b := findBackoff(entries, concern)
	if b == nil {
		entries = append(entries, kommov1.Backoff{Concern: concern})
		b = &entries[len(entries)-1]
	}
	if b.ConfigVersion != configVersion {
		b.FailedAttempts = 0
	}
	b.FailedAttempts++
	b.Reason, b.Message, b.ConfigVersion = reason, truncate(message, 1024), configVersion
	b.LastFailureTime = metav1.NewTime(now)
	wait := Backoff(classOfReason(reason), b.FailedAttempts, 0)
	if scale > 0 && wait != forever {
		wait = time.Duration(float64(wait) * scale)
	}
	return entries, max(wait, retryAfter)
}

// ClearFailure ends concern's failure streak.
func ClearFailure(entries []kommov1.Backoff, concern string) []kommov1.Backoff {
	out := entries[:0]
	for _, b := range entries {
		if b.Concern != concern {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
