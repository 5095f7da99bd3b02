package webhook

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// admitPending enforces MaxPendingInstallations and MaxPendingPerClient.
//
// The cap counts installs of the integration received within CodeLifetime that the
// controller has not processed yet, as the informer tells pendingCounts (a count: its
// cost does not follow the number of installations) plus this replica's writes in flight. A failed
// attempt is processed: forged installs stop counting as soon as the controller has tried
// them. It is a soft cap (other replicas' writes show up once the cache sees them); it
// bounds what a flood of valid-looking installs can create. A reinstall of an account
// does not count itself.
//
// The per-client share keeps one client IP from filling the cap alone and locking real
// installs out: see clientShares. On admission it returns a func to call when the write
// is done.
func (s *Server) admitPending(ctx context.Context, in install, from netip.Addr, log logr.Logger) (func(), answer, string) {
	limit := s.opts.MaxPendingInstallations
	if limit <= 0 {
		return func() {}, answer{}, ""
	}
	ikey := client.ObjectKeyFromObject(in.integration)
	n := s.pending.count(ikey, in.key.Name, in.receivedAt)
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if n += s.inflight[ikey]; n >= limit {
		log.Info("Rejected install: too many pending installations", "pending", n, "max", limit)
		return nil, ansPendingCap, outcomePendingCap
	}
	if !s.shares.admit(in, from, s.succeeded(ctx)) {
		log.Info("Rejected install: this client's share of the pending installations is used up",
			"client", from.String(), "max", s.opts.MaxPendingPerClient)
		return nil, ansPendingCap, outcomePendingCap
	}
	s.inflight[ikey]++
	return func() {
		s.pendingMu.Lock()
		defer s.pendingMu.Unlock()
		if s.inflight[ikey]--; s.inflight[ikey] <= 0 {
			delete(s.inflight, ikey)
		}
	}, answer{}, ""
}

// isPending: an install received less than lifetime ago and not processed yet.
func isPending(it *kommov1.KommoInstallation, now time.Time, lifetime time.Duration) bool {
	return awaitsProcessing(it) && now.Sub(it.Spec.Authorization.ReceivedAt.Time) < lifetime
}

// succeeded reports, from the cache, whether the install of code Secret secretName on
// installation key has become the installation's grant.
func (s *Server) succeeded(ctx context.Context) func(key client.ObjectKey, secretName string) bool {
	return func(key client.ObjectKey, secretName string) bool {
		it := &kommov1.KommoInstallation{}
		if s.cache.Get(ctx, key, it, client.UnsafeDisableDeepCopy) != nil {
			return false
		}
		a := it.Spec.Authorization
		return a != nil && a.CodeSecretRef.Name == secretName && it.Status.InstalledAt != nil && it.Status.InstalledAt.Equal(&a.ReceivedAt)
	}
}

// clientShares counts, per integration and client IP (IPv6: per /64, as the rate limiter
// groups them), the installs this replica admitted within the code's lifetime, one per
// installation. A client may hold at most max of them. An install that became a working
// grant gives its place back at once: Kommo sends real installs from a few addresses of
// its own, and they succeed within seconds; forged ones hold their place for the code's
// lifetime, failed or not, so a client that forges installs faster than the controller
// rejects them still holds no more than its share.
type clientShares struct {
	max      int
	lifetime time.Duration

	mu        sync.Mutex
	byClient  map[shareKey]map[string]shareEntry // installation name → the install admitted
	lastSweep time.Time
}

type shareKey struct {
	integration client.ObjectKey
	client      netip.Addr
}

type shareEntry struct {
	secretName string
	at         time.Time
}

func newClientShares(max int, lifetime time.Duration) *clientShares {
	return &clientShares{max: max, lifetime: lifetime, byClient: make(map[shareKey]map[string]shareEntry)}
}

// admit takes a place for in from client, or reports that the client has none left.
func (c *clientShares) admit(in install, from netip.Addr, succeeded func(client.ObjectKey, string) bool) bool {
	if c.max <= 0 {
		return true
	}
	now := in.receivedAt
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.lastSweep) >= time.Minute {
		c.sweep(now)
	}
	key := shareKey{client.ObjectKeyFromObject(in.integration), clientKey(from)}
	held := c.byClient[key]
	if _, again := held[in.key.Name]; !again && len(held) >= c.max {
		// Full: give back the places whose code expired or whose install became a working
		// grant. Only then: looking them up on every admit cost a cache read per pending
		// install per redirect, quadratic in a migration's burst.
		for name, e := range held {
			if now.Sub(e.at) >= c.lifetime || succeeded(client.ObjectKey{Namespace: in.key.Namespace, Name: name}, e.secretName) {
				delete(held, name)
			}
		}
		if len(held) >= c.max {
			return false
		}
	}
	if held == nil {
		held = make(map[string]shareEntry)
		c.byClient[key] = held
	}
	held[in.key.Name] = shareEntry{secretName: in.secretName, at: now}
	return true
}

// sweep drops places whose code has expired, so that memory follows recent installs.
func (c *clientShares) sweep(now time.Time) {
	for k, held := range c.byClient {
		for name, e := range held {
			if now.Sub(e.at) >= c.lifetime {
				delete(held, name)
			}
		}
		if len(held) == 0 {
			delete(c.byClient, k)
		}
	}
	c.lastSweep = now
}
