package upgrade_test

import (
	"testing"
	"time"
)

// TestShiftKeepsPrecision: moving a captured time keeps the layout it was written in, so
// that a MicroTime still orders installs within a second and the token Secret's record
// of its install still equals spec.authorization.receivedAt.
func TestShiftKeepsPrecision(t *testing.T) {
	d := 36*time.Hour + 5*time.Second
	for in, want := range map[string]string{
		"2026-12-01T21:03:54Z":        "2026-12-03T09:03:59Z",
		"2026-12-01T21:03:54.209540Z": "2026-12-03T09:03:59.209540Z",
		"wa-bridge.acme.kommo.com":    "wa-bridge.acme.kommo.com",
		"2026-12-01":                  "2026-12-01",
		"v1.1700000000.nonce.abcdef":  "v1.1700000000.nonce.abcdef",
	} {
		if got := shiftString(in, d); got != want {
			t.Errorf("shiftString(%q) = %q, want %q", in, got, want)
		}
	}
}
