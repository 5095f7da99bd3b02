package webhook

import (
	"net/url"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// Query parameters the hand-off adds to the integration's browserRedirectURL.
const (
	handOffAccount      = "account"
	handOffInstallation = "installation"
)

// accepted is the answer to an accepted install (recorded, a duplicate, or being
// recorded in the background): with the integration's browserRedirectURL set, a browser
// is sent there.
func accepted(a answer, in install) answer {
	a.location = handOffURL(in.integration, in.host, in.key.Name)
	return a
}

// handOffURL is the integration's browserRedirectURL with the account host (validated by
// kommo.ParseReferer) and the installation's name as query parameters; empty without
// one. It never carries the code or the state. The CRD admits only absolute https URLs
// without a fragment; one stored under an older CRD is checked again here and, if it
// fails, answered with the webhook's own page.
func handOffURL(integ *kommov1.KommoIntegration, host, installation string) string {
	raw := integ.Spec.BrowserRedirectURL
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" || u.Fragment != "" {
		return ""
	}
	q := u.Query()
	q.Set(handOffAccount, host)
	q.Set(handOffInstallation, installation)
	u.RawQuery = q.Encode()
	return u.String()
}
