package kommo_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/kommo-operator/kommo-operator/kommo"
)

func TestParseReferer(t *testing.T) {
	accepted := []struct{ in, want string }{
		{"acme.kommo.com", "acme.kommo.com"},
		{"acme.amocrm.ru", "acme.amocrm.ru"},
		{"acme.amocrm.com", "acme.amocrm.com"},
		{"ACME.Kommo.COM", "acme.kommo.com"}, // Kommo's docs say to lowercase
		{"a.kommo.com", "a.kommo.com"},
		{"a-1.kommo.com", "a-1.kommo.com"},
		{"123.kommo.com", "123.kommo.com"},
		{"xn--80ak6aa92e.kommo.com", "xn--80ak6aa92e.kommo.com"},
		{strings.Repeat("a", 63) + ".kommo.com", strings.Repeat("a", 63) + ".kommo.com"},
	}
	for _, tc := range accepted {
		got, err := kommo.ParseReferer(tc.in, nil)
		if err != nil || got != tc.want {
			t.Errorf("ParseReferer(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}

	rejected := []string{
		"",
		"kommo.com",                             // no subdomain
		"a.b.kommo.com",                         // multi-label subdomain
		"kommo.com.evil.io",                     // suffix look-alike
		"acme.kommo.com.evil.io",                // suffix look-alike
		"evilkommo.com",                         // no dot before the suffix
		"acme.evilkommo.com",                    // label glued to the suffix
		"acme.kommo.co",                         // other TLD
		"acme.kommo.community",                  // suffix as a prefix
		"https://acme.kommo.com",                // scheme
		"//acme.kommo.com",                      // scheme-relative
		"acme.kommo.com/",                       // path
		"acme.kommo.com/oauth",                  // path
		"acme.kommo.com:443",                    // port
		"user@acme.kommo.com",                   // userinfo
		"evil.io@acme.kommo.com",                // userinfo
		"acme.kommo.com?x=1",                    // query
		"acme.kommo.com#x",                      // fragment
		"acme.kommo.com.",                       // trailing dot
		".acme.kommo.com",                       // empty label
		"acme..kommo.com",                       // empty label
		"-acme.kommo.com",                       // leading hyphen
		"acme-.kommo.com",                       // trailing hyphen
		"ac_me.kommo.com",                       // underscore
		"ac me.kommo.com",                       // space
		" acme.kommo.com",                       // leading space
		"acme.kommo.com\n",                      // control character
		"acme.kommo.com\x00",                    // NUL
		"acme.kommo.com\\evil.io",               // backslash
		"acme.kοmmo.com",                        // Greek omicron
		"аcme.kommo.com",                        // Cyrillic a
		"acme.kommo.com%2f",                     // escaped slash
		"127.0.0.1",                             // IP literal
		"[::1]",                                 // IPv6 literal
		"1.2.3.4",                               // IP literal
		strings.Repeat("a", 64) + ".kommo.com",  // label over 63
		strings.Repeat("a.", 130) + "kommo.com", // host over 253
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 250), // over 253
		"amojo.kommo.com.",
	}
	for _, in := range rejected {
		got, err := kommo.ParseReferer(in, nil)
		if err == nil {
			t.Errorf("ParseReferer(%q) = %q, want an error", in, got)
			continue
		}
		if !errors.Is(err, kommo.ErrInvalidReferer) {
			t.Errorf("ParseReferer(%q) error %v does not wrap ErrInvalidReferer", in, err)
		}
		if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("ParseReferer(%q) error echoes the input: %v", in, err)
		}
	}
}

func TestParseRefererAllowed(t *testing.T) {
	allowed := []string{"example.test"}
	if got, err := kommo.ParseReferer("acme.example.test", allowed); err != nil || got != "acme.example.test" {
		t.Errorf("custom suffix: got %q, %v", got, err)
	}
	if _, err := kommo.ParseReferer("acme.kommo.com", allowed); err == nil {
		t.Error("a custom list must replace the defaults, not extend them")
	}
	// A broken entry matches nothing instead of everything.
	for _, bad := range [][]string{{""}, {"."}, {"com."}, {"*.com"}, {"Kommo.com"}} {
		if _, err := kommo.ParseReferer("acme.kommo.com", bad); err == nil {
			t.Errorf("allowed %q accepted acme.kommo.com", bad)
		}
	}
}

func TestMatchesDomain(t *testing.T) {
	tests := []struct {
		host    string
		allowed []string
		want    bool
	}{
		{"acme.kommo.com", nil, true},
		{"acme.amocrm.ru", []string{"amocrm.ru"}, true},
		{"acme.amocrm.ru", []string{"kommo.com"}, false},
		{"ACME.kommo.com", nil, false}, // no lowercasing here: callers pass canonical hosts
		{"a.b.kommo.com", nil, false},
		{"kommo.com", nil, false},
		{"acme.kommo.com.evil.io", nil, false},
		{"acme.kommo.com:443", nil, false},
		{"", nil, false},
	}
	for _, tc := range tests {
		if got := kommo.MatchesDomain(tc.host, tc.allowed); got != tc.want {
			t.Errorf("MatchesDomain(%q, %q) = %v, want %v", tc.host, tc.allowed, got, tc.want)
		}
	}
}

func TestAmojoHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"acme.kommo.com", "amojo.kommo.com"},
		{"acme.amocrm.ru", "amojo.amocrm.ru"},
		{"acme.amocrm.com", "amojo.amocrm.com"},
		{"acme.example.test", "amojo.example.test"},
	}
	for _, tc := range tests {
		if got, err := kommo.AmojoHost(tc.in); err != nil || got != tc.want {
			t.Errorf("AmojoHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "kommo", "acme.kommo.com/x", "acme.kommo.com:1", "1.2.3.4", "Acme.kommo.com"} {
		if got, err := kommo.AmojoHost(in); err == nil {
			t.Errorf("AmojoHost(%q) = %q, want an error", in, got)
		}
	}
}

var canonicalHost = regexp.MustCompile(`^[a-z0-9-]+\.(kommo\.com|amocrm\.ru|amocrm\.com)$`)

func FuzzParseReferer(f *testing.F) {
	for _, s := range []string{
		"acme.kommo.com", "ACME.amocrm.ru", "a.amocrm.com", "kommo.com", "a.b.kommo.com",
		"kommo.com.evil.io", "evilkommo.com", "https://acme.kommo.com/x", "acme.kommo.com:443",
		"u@acme.kommo.com", "acme.kommo.com.", "-a.kommo.com", "1.2.3.4", "[::1]", "аcme.kommo.com",
		"acme.kommo.com?q#f", strings.Repeat("a", 64) + ".kommo.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, referer string) {
		got, err := kommo.ParseReferer(referer, nil)
		if err != nil {
			if got != "" {
				t.Fatalf("error with a result %q", got)
			}
			return
		}
		if !canonicalHost.MatchString(got) {
			t.Fatalf("ParseReferer(%q) = %q, not <label>.<allowed suffix>", referer, got)
		}
		if len(got) > 253 || strings.HasPrefix(got, "-") || strings.Contains(got, "-.") {
			t.Fatalf("ParseReferer(%q) = %q, not a valid host", referer, got)
		}
		again, err := kommo.ParseReferer(got, nil)
		if err != nil || again != got {
			t.Fatalf("result %q does not re-parse to itself: %q, %v", got, again, err)
		}
		if !kommo.MatchesDomain(got, nil) {
			t.Fatalf("MatchesDomain rejects ParseReferer's result %q", got)
		}
		if !strings.EqualFold(got, referer) {
			t.Fatalf("ParseReferer(%q) = %q changed more than case", referer, got)
		}
	})
}
