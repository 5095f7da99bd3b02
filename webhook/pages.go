package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
)

// pageStyle is the pages' only style; the CSP allows exactly it, by hash. No scripts,
// images or fonts: the CSP allows none.
const pageStyle = `body{margin:0;padding:4rem 1rem;background:#f3f4f6;color:#1f2328;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}` +
	`main{max-width:32rem;margin:0 auto;padding:1.5rem 2rem;background:#fff;border-radius:.5rem;border-top:.375rem solid #6e7781;box-shadow:0 1px 3px rgba(0,0,0,.15)}` +
	`.ok{border-top-color:#1a7f37}.refused{border-top-color:#cf222e}` +
	`h1{margin:0;font-size:1.375rem;line-height:1.3}p{margin:.75rem 0 0}a{color:#0969da;font-weight:600}`

var (
	pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title><style>` + pageStyle + `</style></head>
<body><main class="{{.Tone}}"><h1>{{.Title}}</h1><p>{{.Text}}</p>{{with .Link}}<p><a href="{{.}}">{{$.LinkText}}</a></p>{{end}}</main></body></html>
`))
	pageCSP = "default-src 'none'; style-src 'sha256-" + styleHash() + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func styleHash() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// renderPage writes page p in language l. link, when set, is the hand-off URL (built
// from the KommoIntegration, never from the request).
func renderPage(p page, l lang, link string) []byte {
	def := &pages[p]
	var buf bytes.Buffer
	// The template and its data are fixed: it cannot fail.
	_ = pageTemplate.Execute(&buf, struct {
		Lang, Tone, Title, Text, Link, LinkText string
	}{l.code(), string(def.tone), def.texts[l].title, def.texts[l].text, link, linkText[l]})
	return buf.Bytes()
}
