package webhook

import (
	"net/http"

	"golang.org/x/text/language"
)

// lang is a language the browser pages are written in: an index into each page's texts.
type lang int

// The page languages: Kommo's own (it publishes its developer docs in these four).
// English comes first: it is the matcher's default.
const (
	langEnglish lang = iota
	langPortuguese
	langSpanish
	langRussian
	numLangs
)

var (
	langTags = [numLangs]language.Tag{
		langEnglish:    language.English,
		langPortuguese: language.Portuguese,
		langSpanish:    language.Spanish,
		langRussian:    language.Russian,
	}
	langMatcher = language.NewMatcher(langTags[:])
)

// code is the language's BCP 47 code, for the page's lang attribute and Content-Language.
func (l lang) code() string { return langTags[l].String() }

// pageLanguage picks the page language from Accept-Language, English when nothing
// matches or the header does not parse.
func pageLanguage(r *http.Request) lang {
	// The header's size is bounded by the server's MaxHeaderBytes, and the parser
	// refuses absurdly long lists.
	_, i := language.MatchStrings(langMatcher, r.Header.Values("Accept-Language")...)
	if i < 0 || i >= int(numLangs) {
		return langEnglish
	}
	return lang(i)
}
