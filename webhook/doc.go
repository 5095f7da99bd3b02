// Package webhook is the public HTTP server that records Kommo's install redirects and
// "access revoked" hooks as KommoInstallations. It holds no secrets: it may read
// KommoIntegrations and KommoInstallations, create and patch KommoInstallations, and
// create Secrets, nothing else.
//
// # Routes
//
//	GET /kommo/{namespace}/{integration}/redirect   Kommo's install redirect (the integration's Redirect URI)
//	GET /kommo/{namespace}/{integration}/revoke     Kommo's "access revoked" hook
//
// Kommo gives an install 3 seconds, ignores the answer and never resends, so a request is
// validated entirely in memory (against the watch cache) and answered within
// Options.RequestDeadline whatever the API server does. Before anything is written:
// the client IP is within its rate limit; the method is GET with no body; the query is
// at most 4 KiB and repeats no parameter; the KommoIntegration exists; referer is a bare
// account host under the integration's accountDomains (kommo.ParseReferer; no host is
// ever contacted); code is 1 to 2048 bytes of printable ASCII without spaces; state is at
// most 512 bytes of printable ASCII; the integration has fewer than
// Options.MaxPendingInstallations installs waiting for the controller (a failed attempt
// is not waiting); and the client IP holds fewer than Options.MaxPendingPerClient of
// them in this replica. error=... (the user declined) is answered with a polite page and
// written nowhere.
//
// An install is then written in an order that never shows the controller a reference to
// a missing Secret:
//
//  1. an immutable Secret of type kommo-operator.io/authorization-code named
//     kommo-code-<first 32 hex of sha256(namespace/integration/account host/code)>,
//     owned (not controlled) by the KommoIntegration; the same code always makes the same
//     Secret, so a repeat is AlreadyExists;
//  2. the KommoInstallation <integration>.<account host>, created, or its
//     spec.authorization alone merge-patched under a resourceVersion precondition.
//
// The same code twice is one install: a codeSecretRef already naming this code's Secret
// is not patched again (a new receivedAt would make the controller exchange a used
// code). A different code always becomes the current authorization: installs are not
// ordered by receivedAt, which comes from the clocks of different replicas. receivedAt
// has microsecond precision, is strictly increasing within a replica, and differs from
// every receivedAt the object already holds (the controller tells installs apart by it).
// An installation being deleted is not written to: the install waits until it is gone
// and creates it anew.
//
// A revoke hook (client_uuid or the legacy client_id, account_id, signature) is recorded
// in spec.revocation of the installations labelled kommo-operator.io/integration and
// kommo-operator.io/account-id, unverified: the controller checks the signature, the
// account and Kommo. spec.revocation.supersedes names the authorization the object held
// then; the same hook with the same supersedes is a duplicate, after a reinstall it is
// recorded again. When no installation carries the account id yet, the hook is recorded
// on the (at most 20, newest) installations of the integration whose account id is not
// known; when there are none either, it is answered 200 and written nowhere.
//
// Writes the API server has not confirmed by the deadline are answered 202 and retried
// in the background, with backoff, until the code's 20 minutes run out; shutdown waits
// for them (bounded). /readyz fails while the replica's dry-run writes fail. Answers
// never echo the query; browsers (Accept: text/html) get a small page with a strict
// Content-Security-Policy (no scripts; one style, by hash) in English, Portuguese,
// Spanish or Russian, matched from Accept-Language (English otherwise); machines get
// plain text ("ok"). The pages are truthful: an accepted install
// is "received" and being completed, since the controller has yet to exchange the code;
// a refusal says nothing was recorded. When the KommoIntegration sets
// browserRedirectURL, a browser whose install was accepted (recorded, a duplicate, or
// deferred) is sent there with 303 See Other, the account host and the installation's
// name added as the query parameters account and installation, never the code or the
// state. Logs never carry the query, the code or the state.
//
// # Metrics
//
//	kommo_webhook_requests_total{route,outcome}         route: redirect, revoke; outcome: recorded, duplicate,
//	                                                    denied, rejected, unknown_integration, rate_limited,
//	                                                    pending_cap, deferred, error, not_found
//	kommo_webhook_request_duration_seconds{route}       time to answer
//	kommo_webhook_deferred_writes                       background writes in progress
//	kommo_webhook_deferred_writes_total{result}         finished background writes: recorded, expired, failed
package webhook
