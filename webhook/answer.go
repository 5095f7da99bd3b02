package webhook

import (
	"log"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
)

// answer is a fixed response. Nothing in an answer comes from the request (pages must
// not echo the code, and nothing else is worth the risk either), except the validated
// account host in a hand-off's location.
type answer struct {
	status int
	// plain is the text/plain body for machines (Kommo's server-to-server install).
	plain string
	// page is what browsers see, in their language (pagetext.go).
	page page
	// location, when set, sends a browser on with 303 See Other after an accepted
	// install (the integration's browserRedirectURL, see handoff.go). Machines get
	// status and plain as always.
	location string
}

var (
	ansInstalled = answer{status: http.StatusOK, plain: "ok", page: pageReceived}
	// ansAccepted: the API server was slow; the install is being recorded in the background.
	ansAccepted       = answer{status: http.StatusAccepted, plain: "ok", page: pageReceived}
	ansCancelled      = answer{status: http.StatusOK, plain: "installation cancelled", page: pageCancelled}
	ansRevokeOK       = answer{status: http.StatusOK, plain: "ok", page: pageRevokeReceived}
	ansRevokeAccepted = answer{status: http.StatusAccepted, plain: "ok", page: pageRevokeReceived}

	ansMethod             = answer{status: http.StatusMethodNotAllowed, plain: "method not allowed: use GET", page: pageMethod}
	ansBody               = answer{status: http.StatusRequestEntityTooLarge, plain: "request bodies are not accepted", page: pageBody}
	ansQueryTooLong       = answer{status: http.StatusRequestURITooLong, plain: "query string too long", page: pageQueryTooLong}
	ansBadQuery           = answer{status: http.StatusBadRequest, plain: "malformed query string", page: pageBadQuery}
	ansNotFound           = answer{status: http.StatusNotFound, plain: "not found", page: pageNotFound}
	ansUnknownIntegration = answer{status: http.StatusNotFound, plain: "unknown integration", page: pageUnknownIntegration}
	ansBadReferer         = answer{status: http.StatusBadRequest, plain: "invalid referer: not a Kommo account host", page: pageBadReferer}
	ansBadCode            = answer{status: http.StatusBadRequest, plain: "missing or invalid code", page: pageBadCode}
	ansBadState           = answer{status: http.StatusBadRequest, plain: "invalid state", page: pageBadState}
	ansBadRevoke          = answer{status: http.StatusBadRequest, plain: "invalid revoke hook: need client_uuid, account_id (digits) and signature (hex)", page: pageBadRevoke}
	ansRateLimited        = answer{status: http.StatusTooManyRequests, plain: "too many requests", page: pageRateLimited}
	ansPendingCap         = answer{status: http.StatusServiceUnavailable, plain: "too many installations pending", page: pagePendingCap}
	ansError              = answer{status: http.StatusInternalServerError, plain: "could not record the request", page: pageError}
)

// wantsHTML reports whether the client is a browser.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

func writeAnswer(w http.ResponseWriter, r *http.Request, a answer) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept, Accept-Language")
	switch a.status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodGet)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		h.Set("Retry-After", "60")
	}
	if !wantsHTML(r) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.plain + "\n"))
		return
	}
	l := pageLanguage(r)
	status, p := a.status, a.page
	if a.location != "" {
		// The page, with a link, is for a browser that does not follow.
		h.Set("Location", a.location)
		status, p = http.StatusSeeOther, pageHandOff
	}
	body := renderPage(p, l, a.location)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", l.code())
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// newServerErrorLog routes net/http's own messages (bad connections, panics) to logr.
func newServerErrorLog(l logr.Logger) *log.Logger {
	return log.New(logWriter{l.WithName("http")}, "", 0)
}

type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info("HTTP server error", "message", strings.TrimSpace(string(p)))
	return len(p), nil
}
