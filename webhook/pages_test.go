package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// Words that would claim an install is done, per language.
var claimsInstalled = [numLangs][]string{
	langEnglish:    {"installed", "Installed"},
	langPortuguese: {"instalado", "instalada", "Instalado", "Instalada"},
	langSpanish:    {"instalado", "instalada", "Instalado", "Instalada"},
	langRussian:    {"установлен", "Установлен"},
}

// What every refusal says, per language: nothing was recorded or installed.
var saysNothing = [numLangs][]string{
	langEnglish:    {"Nothing was", "could not be recorded"},
	langPortuguese: {"Nada foi", "não pôde ser registrada"},
	langSpanish:    {"No se", "no se pudo registrar"},
	langRussian:    {"Ничего не", "не удалось записать"},
}

func TestPageTexts(t *testing.T) {
	for p := page(0); p < numPages; p++ {
		def := pages[p]
		if def.tone == "" {
			t.Errorf("page %d has no tone", p)
		}
		for l := lang(0); l < numLangs; l++ {
			txt := def.texts[l]
			if txt.title == "" || txt.text == "" {
				t.Errorf("page %d has no %s text", p, l.code())
				continue
			}
			if l != langEnglish && (txt.title == def.texts[langEnglish].title || txt.text == def.texts[langEnglish].text) {
				t.Errorf("page %d in %s is still English: %q", p, l.code(), txt.title)
			}
			if p == pageReceived || p == pageHandOff {
				for _, w := range claimsInstalled[l] {
					if strings.Contains(txt.title+" "+txt.text, w) {
						t.Errorf("the accepted page in %s claims the install is done (%q): %q", l.code(), w, txt.text)
					}
				}
			}
			if def.tone == toneRefused && !containsAny(txt.text, saysNothing[l]) {
				t.Errorf("refusal page %d in %s does not say nothing was recorded: %q", p, l.code(), txt.text)
			}
		}
	}
	for l := lang(0); l < numLangs; l++ {
		if linkText[l] == "" {
			t.Errorf("no link text in %s", l.code())
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestPageLanguage(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   lang
	}{
		{nil, langEnglish},
		{[]string{""}, langEnglish},
		{[]string{"en-US,en;q=0.9"}, langEnglish},
		{[]string{"pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7"}, langPortuguese},
		{[]string{"pt-PT"}, langPortuguese},
		{[]string{"es-419,es;q=0.9"}, langSpanish},
		{[]string{"es-MX"}, langSpanish},
		{[]string{"ru-RU,ru;q=0.9,en-US;q=0.8"}, langRussian},
		{[]string{"de-DE,de;q=0.9"}, langEnglish},                   // not offered: English
		{[]string{"de-DE,de;q=0.9,ru;q=0.5"}, langRussian},          // the first offered one the browser accepts
		{[]string{"en;q=0.2,es;q=0.8"}, langSpanish},                // by quality, not order
		{[]string{"zh-CN", "ru"}, langRussian},                      // several header lines
		{[]string{"*"}, langEnglish},                                //
		{[]string{"!!!;;;q=x"}, langEnglish},                        // malformed
		{[]string{strings.Repeat("ru-", 2000) + "ru"}, langEnglish}, // absurd
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, v := range tc.accept {
			r.Header.Add("Accept-Language", v)
		}
		if got := pageLanguage(r); got != tc.want {
			t.Errorf("Accept-Language %q: %s, want %s", tc.accept, got.code(), tc.want.code())
		}
	}
}

func TestHandOffURL(t *testing.T) {
	integ := func(u string) *kommov1.KommoIntegration {
		return &kommov1.KommoIntegration{Spec: kommov1.KommoIntegrationSpec{BrowserRedirectURL: u}}
	}
	const host, name = "acme.kommo.com", "wa-bridge.acme.kommo.com"
	got := handOffURL(integ("https://site.example.com/kommo/welcome?from=kommo&account=forged"), host, name)
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "https" || u.Host != "site.example.com" || u.Path != "/kommo/welcome" || q.Get("from") != "kommo" ||
		len(q["account"]) != 1 || q.Get("account") != host || q.Get("installation") != name || len(q) != 3 {
		t.Errorf("hand-off URL %q", got)
	}
	// Stored under an older CRD, or not https: no hand-off at all.
	for _, bad := range []string{"", "http://site.example.com/", "https:opaque", "https:///path", "https://site.example.com/#frag", "javascript:alert(1)", "https://site.example.com/%zz"} {
		if got := handOffURL(integ(bad), host, name); got != "" {
			t.Errorf("%q: hand-off to %q, want none", bad, got)
		}
	}
}

// createIntegrationWithHandOff creates a KommoIntegration with browserRedirectURL and
// waits until the webhook's cache has it.
func (h *harness) createIntegrationWithHandOff(ns, name, redirectURL string) {
	h.t.Helper()
	h.createIntegrationWith(ns, name, func(spec *kommov1.KommoIntegrationSpec) { spec.BrowserRedirectURL = redirectURL })
}

func TestBrowserPagesAreLocalized(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	for _, tc := range []struct {
		acceptLanguage string
		want           lang
	}{
		{"", langEnglish},
		{"pt-BR,pt;q=0.9", langPortuguese},
		{"es-419,es;q=0.9", langSpanish},
		{"ru-RU,ru;q=0.9", langRussian},
		{"fr-FR,fr;q=0.9", langEnglish},
	} {
		t.Run(tc.want.code()+"/"+tc.acceptLanguage, func(t *testing.T) {
			code := testCode("localized" + tc.acceptLanguage)
			host := "acme-" + tc.want.code() + strings.ToLower(strings.NewReplacer(",", "", ";", "", "=", "", ".", "").Replace(tc.acceptLanguage)) + ".kommo.com"
			for _, c := range []struct {
				target string
				status int
				page   page
			}{
				{redirectPath(ns, "bridge") + "?" + installQuery(host, code, "state", "st-1").Encode(), http.StatusOK, pageReceived},
				{redirectPath(ns, "bridge") + "?" + installQuery("evil.example.com", code).Encode(), http.StatusBadRequest, pageBadReferer},
				{redirectPath(ns, "bridge") + "?error=access_denied&state=st-2", http.StatusOK, pageCancelled},
				{redirectPath(ns, "nope") + "?" + installQuery(host, code).Encode(), http.StatusNotFound, pageUnknownIntegration},
				{revokePath(ns, "bridge") + "?account_id=1", http.StatusBadRequest, pageBadRevoke},
				{"/elsewhere", http.StatusNotFound, pageNotFound},
			} {
				resp := h.do(http.MethodGet, c.target, nil, "Accept", "text/html", "Accept-Language", tc.acceptLanguage)
				want := pages[c.page].texts[tc.want]
				if resp.status != c.status {
					t.Errorf("%s: status %d, want %d", c.target, resp.status, c.status)
				}
				if !strings.Contains(resp.body, `<html lang="`+tc.want.code()+`">`) || resp.header.Get("Content-Language") != tc.want.code() {
					t.Errorf("%s: not marked as %s (Content-Language %q)", c.target, tc.want.code(), resp.header.Get("Content-Language"))
				}
				if !strings.Contains(resp.body, "<h1>"+want.title+"</h1>") || !strings.Contains(resp.body, "<p>"+want.text+"</p>") {
					t.Errorf("%s: page is not %q in %s:\n%s", c.target, want.title, tc.want.code(), resp.body)
				}
				if csp := resp.header.Get("Content-Security-Policy"); csp != pageCSP || !strings.HasPrefix(csp, "default-src 'none';") {
					t.Errorf("%s: Content-Security-Policy %q", c.target, csp)
				}
				if resp.header.Get("X-Frame-Options") != "DENY" || resp.header.Get("Location") != "" {
					t.Errorf("%s: headers %v", c.target, resp.header)
				}
				for _, v := range []string{code[:16], host, "st-1", "st-2", "evil"} {
					if strings.Contains(resp.body, v) {
						t.Errorf("%s: the page echoes %q", c.target, v)
					}
				}
			}
			// Kommo's server-to-server call: plain text, whatever the language.
			resp := h.do(http.MethodGet, redirectPath(ns, "bridge")+"?"+installQuery(host, testCode("machine"+tc.acceptLanguage)).Encode(), nil, "Accept-Language", tc.acceptLanguage)
			if resp.status != http.StatusOK || resp.body != "ok\n" || !strings.HasPrefix(resp.header.Get("Content-Type"), "text/plain") {
				t.Errorf("machine: %d %q (%s)", resp.status, resp.body, resp.header.Get("Content-Type"))
			}
		})
	}
}

func TestHandOffRedirect(t *testing.T) {
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegrationWithHandOff(ns, "bridge", "https://site.example.com/kommo/welcome?from=kommo")
	code, state := testCode("handoff"), "v1.1700000000.nonce-handoff.abcdef"
	target := redirectPath(ns, "bridge") + "?" + installQuery("acme.kommo.com", code, "state", state).Encode()

	for _, attempt := range []string{"first", "duplicate"} {
		resp := h.do(http.MethodGet, target, nil, "Accept", "text/html", "Accept-Language", "es")
		if resp.status != http.StatusSeeOther {
			t.Fatalf("%s: status %d, want 303 (%q)", attempt, resp.status, resp.body)
		}
		loc, err := url.Parse(resp.header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		q := loc.Query()
		if loc.Scheme != "https" || loc.Host != "site.example.com" || loc.Path != "/kommo/welcome" || q.Get("from") != "kommo" ||
			q.Get("account") != "acme.kommo.com" || q.Get("installation") != "bridge.acme.kommo.com" || len(q) != 3 {
			t.Errorf("%s: Location %q", attempt, loc)
		}
		for _, v := range []string{code[:16], "nonce-handoff", "code=", "state="} {
			if strings.Contains(loc.String(), v) || strings.Contains(resp.body, v) {
				t.Errorf("%s: the hand-off carries %q", attempt, v)
			}
		}
		if resp.header.Get("Referrer-Policy") != "no-referrer" || resp.header.Get("Content-Language") != "es" {
			t.Errorf("%s: headers %v", attempt, resp.header)
		}
		// For a browser that does not follow: the page, with a link.
		link := strings.ReplaceAll(loc.String(), "&", "&amp;")
		if !strings.Contains(resp.body, `<a href="`+link+`">`+linkText[langSpanish]+`</a>`) ||
			!strings.Contains(resp.body, pages[pageHandOff].texts[langSpanish].text) {
			t.Errorf("%s: body %q", attempt, resp.body)
		}
	}
	// It was a real install, recorded once.
	inst := getInstallation(t, ns, "bridge.acme.kommo.com")
	if a := inst.Spec.Authorization; a == nil || a.CodeSecretRef.Name != wantSecretName(ns, "bridge", "acme.kommo.com", code) || a.State != state {
		t.Errorf("authorization %+v", inst.Spec.Authorization)
	}

	// Machines are never redirected; refusals never hand off.
	if resp := h.get(redirectPath(ns, "bridge"), installQuery("machine.kommo.com", testCode("handoff-machine"), "from_widget", "1")); resp.status != http.StatusOK ||
		resp.body != "ok\n" || resp.header.Get("Location") != "" {
		t.Errorf("machine: %d %q, Location %q", resp.status, resp.body, resp.header.Get("Location"))
	}
	for _, q := range []url.Values{installQuery("evil.example.com", testCode("x")), {"error": {"access_denied"}}, installQuery("acme.kommo.com", "")} {
		if resp := h.get(redirectPath(ns, "bridge"), q, "Accept", "text/html"); resp.status == http.StatusSeeOther || resp.header.Get("Location") != "" {
			t.Errorf("%v: handed off a request that was not accepted (%d)", q, resp.status)
		}
	}
	assertNoLeak(t, code, state)
}
