package kommo

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultAccountDomains are the account host suffixes used when an integration lists none.
var DefaultAccountDomains = []string{"kommo.com", "amocrm.ru", "amocrm.com"}

// ErrInvalidReferer is wrapped by every ParseReferer error. The messages never echo the
// input: it is attacker-controlled and may end up in logs.
var ErrInvalidReferer = errors.New("kommo: invalid referer")

const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// ParseReferer validates the referer Kommo sends to the Redirect URI and returns the
// canonical account host. The referer is attacker-controlled: whatever is accepted here
// later receives the client secret, so only a bare "<label>.<suffix>" host with suffix in
// allowed (DefaultAccountDomains when empty) passes. ASCII letters are lowercased, as
// Kommo's docs advise; anything that is not a plain DNS name (scheme, port, path, userinfo,
// IP literal, trailing dot, non-ASCII) is refused rather than repaired.
func ParseReferer(referer string, allowed []string) (string, error) {
	if referer == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidReferer)
	}
	if len(referer) > maxHostLen {
		return "", fmt.Errorf("%w: too long", ErrInvalidReferer)
	}
	for i := 0; i < len(referer); i++ {
		if referer[i] >= 0x80 {
			return "", fmt.Errorf("%w: not ASCII", ErrInvalidReferer)
		}
	}
	host := strings.ToLower(referer)
	if err := checkHostname(host); err != nil {
		return "", fmt.Errorf("%w: %s", ErrInvalidReferer, err)
	}
	if !MatchesDomain(host, allowed) {
		return "", fmt.Errorf("%w: not an account host under an allowed domain", ErrInvalidReferer)
	}
	return host, nil
}

// MatchesDomain reports whether host is exactly "<label>.<suffix>" for one of allowed
// (DefaultAccountDomains when empty), with the same rules as ParseReferer but without
// lowercasing. Callers re-check with it right before sending the client secret.
func MatchesDomain(host string, allowed []string) bool {
	if checkHostname(host) != nil {
		return false
	}
	if len(allowed) == 0 {
		allowed = DefaultAccountDomains
	}
	label, suffix, ok := strings.Cut(host, ".")
	if !ok || label == "" {
		return false
	}
	for _, a := range allowed {
		// An invalid suffix in configuration matches nothing rather than everything.
		if a == "" || checkHostname(a) != nil {
			continue
		}
		if suffix == a {
			return true
		}
	}
	return false
}

// AmojoHost maps an account host to the Chats API host of its region: acme.kommo.com →
// amojo.kommo.com, acme.amocrm.ru → amojo.amocrm.ru, and "amojo." plus the host minus
// its first label for any other suffix.
func AmojoHost(accountHost string) (string, error) {
	if err := checkHostname(accountHost); err != nil {
		return "", fmt.Errorf("kommo: invalid account host: %s", err)
	}
	// checkHostname guarantees at least two labels.
	_, suffix, _ := strings.Cut(accountHost, ".")
	return "amojo." + suffix, nil
}

// checkHostname accepts a lowercase DNS name of at least two labels. Its messages are
// fixed phrases so they can be shown without echoing the input.
func checkHostname(host string) error {
	switch {
	case host == "":
		return errors.New("empty")
	case len(host) > maxHostLen:
		return errors.New("too long")
	case strings.HasSuffix(host, "."):
		return errors.New("trailing dot")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return errors.New("character outside [a-z0-9.-]")
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return errors.New("IP literal")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return errors.New("not a domain name")
	}
	for _, l := range labels {
		switch {
		case l == "":
			return errors.New("empty label")
		case len(l) > maxLabelLen:
			return errors.New("label too long")
		case l[0] == '-' || l[len(l)-1] == '-':
			return errors.New("label starts or ends with '-'")
		}
	}
	// An all-numeric last label is never a real TLD; refusing it rules out IPv4 forms
	// netip does not parse (e.g. "1.2.3.04").
	if isDigits(labels[len(labels)-1]) {
		return errors.New("numeric top-level label")
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
