package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real-browser tests: Debian's chromium, headless, loads the webhook's pages from
// localhost. `.ci/run` installs it; without it they skip.

// chromium is the browser's path, or the test is skipped.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("Chromium is not installed: the real-browser tests need Debian's chromium package (apt-get install -y chromium); .ci/run installs it")
	return ""
}

// browse loads target in a fresh headless Chromium whose Accept-Language is
// acceptLanguage, and returns the DOM once the page (and any redirect) has loaded. With
// screenshot set, it also writes a picture of the page there.
func browse(t *testing.T, browser, acceptLanguage, target, screenshot string, extraFlags ...string) string {
	t.Helper()
	profile := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--user-data-dir=" + profile,
		// --lang does not reach the header in headless mode; --accept-lang does (checked
		// by every test through an echo handler).
		"--accept-lang=" + acceptLanguage,
		"--window-size=720,420",
		"--dump-dom",
	}
	if screenshot != "" {
		args = append(args, "--screenshot="+screenshot)
	}
	args = append(append(args, extraFlags...), target)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, args...)
	cmd.Dir = profile
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Chromium's helper processes may hold the pipes a moment after it exits.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", target, err, stderr.String())
	}
	return stdout.String()
}

// landing is the integration's own site: an HTTPS server on localhost that records what
// reached it and shows the URL the browser ended on.
type landing struct {
	srv  *httptest.Server
	spki string // for --ignore-certificate-errors-spki-list
	mu   sync.Mutex
	seen []*http.Request
}

func newLanding(t *testing.T) *landing {
	l := &landing{}
	l.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kommo/welcome" { // the browser's favicon request
			http.NotFound(w, r)
			return
		}
		l.mu.Lock()
		l.seen = append(l.seen, r.Clone(context.Background()))
		l.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body><h1>Welcome</h1>`+
			`<p id="accept-language">%s</p><p id="referer">%s</p><p id="href"></p>`+
			`<script>document.getElementById("href").textContent = location.href</script></body></html>`,
			html.EscapeString(r.Header.Get("Accept-Language")), html.EscapeString(r.Header.Get("Referer")))
	}))
	t.Cleanup(l.srv.Close)
	sum := sha256.Sum256(l.srv.Certificate().RawSubjectPublicKeyInfo)
	l.spki = base64.StdEncoding.EncodeToString(sum[:])
	return l
}

func (l *landing) requests() []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*http.Request(nil), l.seen...)
}

// element is the text of the element with the given id in a dumped DOM.
func element(dom, id string) string {
	m := regexp.MustCompile(`<p id="` + id + `">([^<]*)</p>`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestRealBrowser(t *testing.T) {
	browser := chromium(t)
	shots := filepath.Join(env.Root, "bin", "screenshots")
	if err := os.RemoveAll(shots); err != nil { // only this run's pictures
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	site := newLanding(t)
	h := startWebhook(t, nil, testOptions(), nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	h.createIntegrationWithHandOff(ns, "onboard", site.srv.URL+"/kommo/welcome?from=kommo")

	for _, tc := range []struct {
		acceptLanguage string // as passed to Chromium
		header         string // the Accept-Language Chromium must send for it
		want           lang
	}{
		{"en-US,en", "en-US,en;q=0.9", langEnglish},
		{"pt-BR,pt", "pt-BR,pt;q=0.9", langPortuguese},
		{"es-419,es", "es-419,es;q=0.9", langSpanish},
		{"ru-RU,ru", "ru-RU,ru;q=0.9", langRussian},
		{"de-DE,de", "de-DE,de;q=0.9", langEnglish}, // not offered: English
	} {
		l := tc.want
		name := l.code()
		if tc.acceptLanguage == "de-DE,de" {
			name = "fallback-de"
		}
		t.Run(name, func(t *testing.T) {
			host := "acme-" + name + ".kommo.com"
			code, state := testCode("browser-"+name), "v1.1700000000.nonce-"+name+".abcdef"

			// The hand-off: the install is recorded and the browser lands on the
			// integration's site, which also shows the header Chromium really sent.
			before := len(site.requests())
			dom := browse(t, browser, tc.acceptLanguage,
				h.base+redirectPath(ns, "onboard")+"?"+installQuery(host, code, "state", state).Encode(), "",
				"--ignore-certificate-errors-spki-list="+site.spki)
			final, err := url.Parse(element(dom, "href"))
			if err != nil || final.Host != strings.TrimPrefix(site.srv.URL, "https://") || final.Path != "/kommo/welcome" {
				t.Fatalf("the browser ended on %q (%v), want the integration's site:\n%s", element(dom, "href"), err, dom)
			}
			if got := element(dom, "accept-language"); got != tc.header {
				t.Fatalf("Chromium sent Accept-Language %q for --accept-lang=%s, want %q", got, tc.acceptLanguage, tc.header)
			}
			q := final.Query()
			if q.Get("account") != host || q.Get("installation") != "onboard."+host || q.Get("from") != "kommo" || len(q) != 3 || final.Fragment != "" {
				t.Errorf("final URL %q", final)
			}
			for _, v := range []string{code[:16], "code", "nonce-" + name, "state"} {
				if strings.Contains(final.String(), v) {
					t.Errorf("the final URL carries %q: %s", v, final)
				}
			}
			if ref := element(dom, "referer"); ref != "" {
				t.Errorf("the integration's site got a Referer: %q", ref)
			}
			if reqs := site.requests(); len(reqs) != before+1 {
				t.Errorf("the site was loaded %d times, want once", len(reqs)-before)
			}
			if a := getInstallation(t, ns, "onboard."+host).Spec.Authorization; a == nil ||
				a.CodeSecretRef.Name != wantSecretName(ns, "onboard", host, code) || a.State != state {
				t.Errorf("the install behind the hand-off was not recorded: %+v", a)
			}

			// The pages themselves, in the browser's language, with a picture each (the
			// other pages are the same template: TestBrowserPagesAreLocalized reads them
			// all over HTTP).
			shown := []struct {
				page   page
				target string
			}{
				{pageReceived, redirectPath(ns, "bridge") + "?" + installQuery(host, code, "state", state).Encode()},
				{pageBadReferer, redirectPath(ns, "bridge") + "?" + installQuery("acme.kommo.com.evil.example", code).Encode()},
			}
			if name == "fallback-de" {
				shown = shown[:1]
			}
			for _, p := range shown {
				shot := filepath.Join(shots, fmt.Sprintf("%s-%s.png", name, pageNames[p.page]))
				dom := browse(t, browser, tc.acceptLanguage, h.base+p.target, shot)
				want := pages[p.page].texts[l]
				if !strings.Contains(dom, `<html lang="`+l.code()+`">`) || !strings.Contains(dom, "<h1>"+want.title+"</h1>") ||
					!strings.Contains(dom, "<p>"+want.text+"</p>") {
					t.Errorf("%s page is not %q in %s:\n%s", pageNames[p.page], want.title, l.code(), dom)
				}
				for _, v := range []string{code[:16], host, "nonce-", "evil"} {
					if strings.Contains(dom, v) {
						t.Errorf("%s page echoes %q", pageNames[p.page], v)
					}
				}
				// The CSP allowed the page's style (by hash): the background and the
				// card's top border have their colours, not an unstyled page's white.
				img := readPNG(t, shot)
				if got := colour(img, 4, 4); got != "#f3f4f6" {
					t.Errorf("%s page background %s: the style was not applied", pageNames[p.page], got)
				}
				border := map[tone]string{toneOK: "#1a7f37", toneRefused: "#cf222e"}[pages[p.page].tone]
				if got := colour(img, img.Bounds().Dx()/2, 66); got != border {
					t.Errorf("%s page border %s, want %s", pageNames[p.page], got, border)
				}
			}
			if a := getInstallation(t, ns, "bridge."+host).Spec.Authorization; a == nil || a.CodeSecretRef.Name != wantSecretName(ns, "bridge", host, code) {
				t.Errorf("the install behind the received page was not recorded: %+v", a)
			}
		})
	}
	t.Logf("Screenshots for a person to look at: %s", shots)
	assertNoLeak(t)
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	return img
}

func colour(img image.Image, x, y int) string {
	r, g, b, _ := img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y).RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

// pageNames name the screenshots.
var pageNames = map[page]string{pageReceived: "received", pageBadReferer: "refused"}
