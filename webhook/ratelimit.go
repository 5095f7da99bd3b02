package webhook

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter is a token bucket per client. Buckets idle long enough to be full again are
// dropped, and their number is capped, so that a flood of source addresses cannot grow
// memory: past the cap, new clients share one bucket.
type ipLimiter struct {
	limit      rate.Limit
	burst      int
	idle       time.Duration
	maxClients int
	now        func() time.Time

	mu        sync.Mutex
	clients   map[netip.Addr]*clientBucket
	overflow  *rate.Limiter
	lastSweep time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newIPLimiter returns nil (no limit) when perSecond is not positive.
func newIPLimiter(perSecond float64, burst, maxClients int, now func() time.Time) *ipLimiter {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	// A bucket idle for this long has refilled completely: forgetting it loses nothing.
	idle := time.Duration(float64(burst) / perSecond * float64(time.Second))
	if idle < time.Minute {
		idle = time.Minute
	}
	return &ipLimiter{
		limit:      rate.Limit(perSecond),
		burst:      burst,
		idle:       idle,
		maxClients: maxClients,
		now:        now,
		clients:    make(map[netip.Addr]*clientBucket),
		overflow:   rate.NewLimiter(rate.Limit(perSecond), burst),
		lastSweep:  now(),
	}
}

// allow takes one token from the client's bucket.
func (l *ipLimiter) allow(client netip.Addr) bool {
	if l == nil {
		return true
	}
	key := clientKey(client)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.idle {
		l.sweep(now)
	}
	b, ok := l.clients[key]
	if !ok {
		if len(l.clients) >= l.maxClients {
			l.sweep(now)
		}
		if len(l.clients) >= l.maxClients {
			return l.overflow.AllowN(now, 1)
		}
		b = &clientBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

func (l *ipLimiter) sweep(now time.Time) {
	for k, b := range l.clients {
		if now.Sub(b.seen) >= l.idle {
			delete(l.clients, k)
		}
	}
	l.lastSweep = now
}

// size is the number of buckets held, for tests.
func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientKey groups an IPv6 client by its /64: one host usually holds a whole /64, so
// per-address buckets would be free for it to multiply.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a.Unmap()
}

// clientIP is the address a request is rate-limited by: the TCP peer, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For entry that is not a trusted proxy
// (entries further left are whatever the client chose to send). The zero Addr means
// unknown; such requests share one bucket.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !peer.IsValid() || !inPrefixes(peer, trusted) {
		return peer
	}
	client := peer
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		a := parseHostAddr(hop)
		if !a.IsValid() {
			// Garbage before a trusted hop: the hop that appended it is the client.
			return client
		}
		if !inPrefixes(a, trusted) {
			return a
		}
		client = a
	}
	return client
}

// parseHostAddr parses "ip", "ip:port" or "[ipv6]:port"; the zero Addr if none.
func parseHostAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseCIDRs parses a comma-separated list of CIDRs or bare addresses, as given to
// --trusted-proxy-cidrs.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
