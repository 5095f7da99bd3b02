// Package webhook is the public HTTP server that records Kommo's install redirects and
// "access revoked" hooks as KommoInstallations. It holds no secrets.
package webhook
