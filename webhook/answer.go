package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"log"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
)

// answer is a fixed response. Nothing in an answer ever comes from the request: pages
// must not echo the code, and nothing else is worth the risk either.
type answer struct {
	status int
	// plain is the text/plain body for machines (Kommo's server-to-server install).
	plain string
	// title and text are the HTML page for browsers.
	title, text string
}

var (
	ansInstalled = answer{http.StatusOK, "ok", "Kommo integration installed",
		"You can close this window."}
	// ansAccepted: the API server was slow; the install is being recorded in the background.
	ansAccepted = answer{http.StatusAccepted, "ok", "Kommo integration installed",
		"You can close this window."}
	ansCancelled = answer{http.StatusOK, "installation cancelled", "Installation cancelled",
		"The integration was not installed. You can close this window."}
	ansRevokeOK       = answer{http.StatusOK, "ok", "Done", "You can close this window."}
	ansRevokeAccepted = answer{http.StatusAccepted, "ok", "Done", "You can close this window."}

	ansMethod = answer{http.StatusMethodNotAllowed, "method not allowed: use GET", "Method not allowed",
		"Only GET is accepted here."}
	ansBody = answer{http.StatusRequestEntityTooLarge, "request bodies are not accepted", "Request not accepted",
		"Request bodies are not accepted here."}
	ansQueryTooLong = answer{http.StatusRequestURITooLong, "query string too long", "Request not accepted",
		"The query string is too long."}
	ansBadQuery = answer{http.StatusBadRequest, "malformed query string", "Request not accepted",
		"The query string is malformed or repeats a parameter."}
	ansNotFound = answer{http.StatusNotFound, "not found", "Not found",
		"There is nothing here."}
	ansUnknownIntegration = answer{http.StatusNotFound, "unknown integration", "Unknown integration",
		"This address does not belong to a configured Kommo integration."}
	ansBadReferer = answer{http.StatusBadRequest, "invalid referer: not a Kommo account host", "Installation failed",
		"The request does not come from a Kommo account this integration accepts."}
	ansBadCode = answer{http.StatusBadRequest, "missing or invalid code", "Installation failed",
		"The authorization code is missing or malformed."}
	ansBadState = answer{http.StatusBadRequest, "invalid state", "Installation failed",
		"The state parameter is too long or not printable."}
	ansBadRevoke = answer{http.StatusBadRequest, "invalid revoke hook: need client_uuid, account_id (digits) and signature (hex)",
		"Request not accepted", "The request is not a valid Kommo revoke hook."}
	ansRateLimited = answer{http.StatusTooManyRequests, "too many requests", "Too many requests",
		"Please try again in a moment."}
	ansPendingCap = answer{http.StatusServiceUnavailable, "too many installations pending", "Installation failed",
		"Too many installations are waiting to be processed. Please try again in a few minutes."}
	ansError = answer{http.StatusInternalServerError, "could not record the request", "Installation failed",
		"Something went wrong. Please try again."}
)

// pageStyle is the only style; the CSP allows exactly it, by hash.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}`

var (
	pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title><style>` + pageStyle + `</style></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))
	pageCSP = "default-src 'none'; style-src 'sha256-" + styleHash() + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func styleHash() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return base64.StdEncoding.EncodeToString(sum[:])
}

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
	var buf bytes.Buffer
	_ = pageTemplate.Execute(&buf, struct{ Title, Text string }{a.title, a.text})
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(a.status)
	_, _ = w.Write(buf.Bytes())
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
