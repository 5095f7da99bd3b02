// Package kommo speaks Kommo's (ex-amoCRM) protocol: OAuth code exchange and refresh, the
// account API, the signed Chats API (amojo) channel connect and disconnect, the "access
// revoked" hook signature, and the signed install state. It imports nothing from
// Kubernetes.
//
// # Safety
//
// Errors returned by this package are *Error values (or fixed sentinels) that never
// contain a token, code, client or channel secret, signature, request body, query string
// or URL: they are safe in logs, events and conditions. App, Token and Channel redact
// their secrets when printed. The client never follows redirects and sends the client
// secret only over HTTPS (unless Options.Endpoint points it at a local simulator). It
// does not decide which hosts are Kommo's: check hosts with ParseReferer or MatchesDomain
// first.
//
// # Signed install state
//
// Installs through the "button on site" or a consent link carry a state chosen by the
// integration's site and echoed back by Kommo. When an integration configures a state key,
// the operator accepts such installs only with a state of this form:
//
//	v1.<expiry>.<nonce>.<mac>
//
// where <expiry> is the Unix time in seconds (decimal) after which the state is refused,
// <nonce> is 1 to 64 characters of [A-Za-z0-9_-], and <mac> is the lowercase hex
// HMAC-SHA256, keyed with the state key, of the ASCII string "v1.<expiry>.<nonce>" (the
// first three fields exactly as they appear, dots included). The whole state is at most
// 256 characters and needs no URL escaping. For example, in a shell:
//
//	msg="v1.$(( $(date +%s) + 900 )).$(openssl rand -hex 8)"
//	state="$msg.$(printf %s "$msg" | openssl dgst -sha256 -hmac "$KEY" -hex | sed 's/^.* //')"
//
// MintState and VerifyState implement it.
package kommo
