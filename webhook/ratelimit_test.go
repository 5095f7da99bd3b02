package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseCIDRs("10.0.0.0/8, 192.168.1.7,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer's header ignored", "203.0.113.9:1234", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer, no header", "10.1.2.3:80", nil, "10.1.2.3"},
		{"trusted peer names the client", "10.1.2.3:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted wins over spoofed left", "10.1.2.3:80", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:80", []string{"198.51.100.1, 192.168.1.7", "10.9.9.9"}, "198.51.100.1"},
		{"all trusted: leftmost", "10.1.2.3:80", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage left of a trusted hop", "10.1.2.3:80", []string{"not-an-ip, 10.0.0.6"}, "10.0.0.6"},
		{"entry with port", "10.1.2.3:80", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"ipv6 peer", "[2001:db8::1]:443", []string{"198.51.100.1"}, "2001:db8::1"},
		{"trusted ipv6 proxy", "[fd00::1]:443", []string{"2001:db8::2"}, "2001:db8::2"},
		{"mapped ipv4 peer", "[::ffff:10.1.2.3]:80", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, trusted); got.String() != tc.want {
				t.Errorf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseCIDRs("10.0.0.0/33"); err == nil {
		t.Error("ParseCIDRs accepted a bad prefix")
	}
}

func TestIPLimiterForgetsIdleClientsAndStaysBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newIPLimiter(1, 2, 3, func() time.Time { return now })
	a := netip.MustParseAddr("198.51.100.1")
	if !l.allow(a) || !l.allow(a) || l.allow(a) {
		t.Fatal("want exactly the burst of 2")
	}
	// Other addresses in the same IPv6 /64 share a bucket.
	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if !l.allow(v6a) || !l.allow(v6b) || l.allow(v6a) {
		t.Error("one /64 got more than one burst")
	}
	for i := range 10 {
		l.allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	if n := l.size(); n > 3 {
		t.Errorf("%d buckets, cap is 3", n)
	}
	now = now.Add(l.idle)
	l.allow(netip.MustParseAddr("192.0.2.200"))
	if n := l.size(); n != 1 {
		t.Errorf("%d buckets after everyone else went idle, want 1", n)
	}
	if newIPLimiter(0, 20, 3, time.Now) != nil {
		t.Error("a zero rate must disable the limiter")
	}
}

func TestRateLimit(t *testing.T) {
	opts := testOptions()
	opts.RateLimit, opts.RateBurst = 0.001, 3 // no refill within the test
	opts.TrustedProxies, _ = ParseCIDRs("127.0.0.0/8")
	h := startWebhook(t, nil, opts, nil)
	ns := env.Namespace(t)
	h.createIntegration(ns, "bridge")
	limited := requests(routeRedirect, outcomeRateLimited)
	path := redirectPath(ns, "bridge") + "?referer=acme.kommo.com" // rejected for the missing code: writes nothing

	for i := range 3 {
		if resp := h.do(http.MethodGet, path, nil, "X-Forwarded-For", "203.0.113.1"); resp.status != http.StatusBadRequest {
			t.Fatalf("request %d within the burst: %d", i+1, resp.status)
		}
	}
	resp := h.do(http.MethodGet, path, nil, "X-Forwarded-For", "203.0.113.1")
	if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") == "" {
		t.Fatalf("over the burst: %d (Retry-After %q), want 429", resp.status, resp.header.Get("Retry-After"))
	}
	// A spoofed entry to the left does not buy a new bucket.
	if resp := h.do(http.MethodGet, path, nil, "X-Forwarded-For", "1.2.3.4, 203.0.113.1"); resp.status != http.StatusTooManyRequests {
		t.Errorf("spoofed X-Forwarded-For: %d, want 429", resp.status)
	}
	// Another client behind the same proxy is not affected; the revoke route shares buckets.
	if resp := h.do(http.MethodGet, path, nil, "X-Forwarded-For", "203.0.113.2"); resp.status != http.StatusBadRequest {
		t.Errorf("other client: %d", resp.status)
	}
	if resp := h.do(http.MethodGet, revokePath(ns, "bridge"), nil, "X-Forwarded-For", "203.0.113.1"); resp.status != http.StatusTooManyRequests {
		t.Errorf("revoke from the limited client: %d, want 429", resp.status)
	}
	if d := requests(routeRedirect, outcomeRateLimited) - limited; d != 2 {
		t.Errorf("rate_limited counted %v times on redirect, want 2", d)
	}
}
