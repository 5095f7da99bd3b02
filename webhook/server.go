package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// The webhook's RBAC, generated into config/rbac/webhook by `make manifests`. It reads
// integrations, records installs, and may create Secrets but never read them.
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommointegrations,verbs=get;list;watch
// +kubebuilder:rbac:groups=kommo-operator.io,resources=kommoinstallations,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create

// fieldOwner names the webhook in managedFields.
const fieldOwner = client.FieldOwner("kommo-operator-webhook")

// Server serves Kommo's install redirect and "access revoked" hook. It is a manager
// Runnable that every replica runs (no leader election).
type Server struct {
	opts      Options
	cache     client.Reader // KommoIntegrations and KommoInstallations, possibly stale
	apiReader client.Reader // live reads, to decide a patch
	client    client.Client // writes go straight to the API server
	log       logr.Logger
	limiter   *ipLimiter
	handler   http.Handler

	// inflight counts this replica's install writes per integration, for the pending cap.
	pendingMu sync.Mutex
	inflight  map[client.ObjectKey]int
	shares    *clientShares // under pendingMu
	// pending counts the installs awaiting the controller, from the informer; the server
	// serves once pendingSynced (nil: at once), so a restart does not undercount.
	pending       *pendingCounts
	pendingSynced func() bool

	now       func() time.Time // the clock of receivedAt; tests stop it
	stampMu   sync.Mutex
	lastStamp time.Time

	// Background writes outlive the request that started them, and the Start context: they
	// are cancelled only when shutdown runs out of time.
	jobs       sync.WaitGroup
	jobsCtx    context.Context
	cancelJobs context.CancelFunc

	addr     atomic.Pointer[string]
	ready    atomic.Bool
	writable atomic.Bool // the last write probes succeeded; see probeWrites
}

// Setup creates the webhook server in mgr: it registers the cache's informers and indexes,
// the health and readiness checks (ready once the cache has synced, the listener is up
// and the API server takes writes), and the server as a Runnable. Create mgr with ManagerOptions.
func Setup(mgr manager.Manager, opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ctx := context.Background()
	// Registering the informers here makes the cache sync them before the server starts:
	// answering "unknown integration" from an empty cache would lose installs.
	if err := addIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	if _, err := mgr.GetCache().GetInformer(ctx, &kommov1.KommoIntegration{}); err != nil {
		return nil, fmt.Errorf("watching KommoIntegrations: %w", err)
	}
	s := newServer(mgr.GetCache(), mgr.GetAPIReader(), mgr.GetClient(), mgr.GetLogger().WithName("webhook"), opts)
	installations, err := mgr.GetCache().GetInformer(ctx, &kommov1.KommoInstallation{})
	if err != nil {
		return nil, fmt.Errorf("watching KommoInstallations: %w", err)
	}
	counting, err := installations.AddEventHandler(s.pending.handler())
	if err != nil {
		return nil, fmt.Errorf("counting pending installations: %w", err)
	}
	s.pendingSynced = counting.HasSynced
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", s.readyz); err != nil {
		return nil, err
	}
	if err := mgr.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(c cache.Cache, apiReader client.Reader, cl client.Client, log logr.Logger, opts Options) *Server {
	s := &Server{
		opts:      opts,
		cache:     c,
		apiReader: apiReader,
		client:    cl,
		log:       log,
		limiter:   newIPLimiter(opts.RateLimit, opts.RateBurst, maxTrackedClients, time.Now),
		inflight:  make(map[client.ObjectKey]int),
		shares:    newClientShares(opts.MaxPendingPerClient, opts.CodeLifetime),
		pending:   newPendingCounts(opts.CodeLifetime),
		now:       time.Now,
	}
	s.jobsCtx, s.cancelJobs = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/kommo/{namespace}/{integration}/redirect", s.instrument(routeRedirect, s.redirect))
	mux.HandleFunc("/kommo/{namespace}/{integration}/revoke", s.instrument(routeRevoke, s.revoke))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAnswer(w, r, ansNotFound)
	})
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux answers an unclean path with a redirect that repeats the query, code
		// included, in its Location header and body: refuse such paths instead.
		if p := r.URL.Path; p == "" || path.Clean(p) != p {
			writeAnswer(w, r, ansNotFound)
			return
		}
		mux.ServeHTTP(w, r)
	})
	return s
}

// Handler serves the Kommo routes; Start serves it on Options.BindAddress.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address the server listens on, empty until it does.
func (s *Server) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx is cancelled, serves unready for Options.ShutdownDelay, then
// stops accepting requests and waits, up to Options.ShutdownTimeout, for in-flight
// requests and background writes.
func (s *Server) Start(ctx context.Context) error {
	if s.pendingSynced != nil && !toolscache.WaitForCacheSync(ctx.Done(), s.pendingSynced) {
		return errors.New("webhook: stopped before the pending installations were counted")
	}
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("webhook: listening on %s: %w", s.opts.BindAddress, err)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(s.opts.EnableHTTP2)
	srv := &http.Server{
		Handler:           s.handler,
		Protocols:         protocols,
		ReadHeaderTimeout: 2 * time.Second,
		// No bodies are accepted, so reading a request never takes long.
		ReadTimeout: 5 * time.Second,
		// Handlers answer within the deadline; this only catches slow readers.
		WriteTimeout:   s.opts.RequestDeadline + 5*time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       newServerErrorLog(s.log),
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go s.probeWrites(probeCtx)
	s.ready.Store(true)
	s.log.Info("Serving Kommo routes", "address", addr)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		s.ready.Store(false)
		s.cancelJobs()
		return fmt.Errorf("webhook: serving: %w", err)
	}
	s.ready.Store(false)
	// Answers from now on say Connection: close, so that proxies holding keep-alive
	// connections open new ones, to replicas that stay.
	srv.SetKeepAlivesEnabled(false)
	if d := s.opts.ShutdownDelay; d > 0 {
		s.log.Info("Shutting down: serving unready until traffic stops", "delay", d.String())
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case err := <-serveErr:
			t.Stop()
			s.cancelJobs()
			return fmt.Errorf("webhook: serving: %w", err)
		}
	}
	s.log.Info("Shutting down: waiting for in-flight requests and background writes")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		s.log.Error(err, "In-flight requests did not finish in time")
	}
	<-serveErr
	return s.drain(shutdownCtx)
}

// drain waits for background writes until ctx ends, then cancels the rest.
func (s *Server) drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.jobs.Wait(); close(done) }()
	select {
	case <-done:
		s.cancelJobs()
		return nil
	case <-ctx.Done():
	}
	s.cancelJobs()
	<-done // every attempt honours the cancelled context
	return errors.New("webhook: shutdown ran out of time with background writes pending")
}

func (s *Server) readyz(*http.Request) error {
	if !s.ready.Load() {
		return errors.New("not serving")
	}
	if !s.writable.Load() {
		return errors.New("cannot write to the API server")
	}
	return nil
}

// stamp is the receivedAt of a request that arrived at t: UTC, whole microseconds (what
// metav1.MicroTime keeps) and strictly increasing in this process, so two installs in
// the same second, even the same microsecond, are ordered.
func (s *Server) stamp(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Microsecond)
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Microsecond)
	}
	s.lastStamp = t
	return t
}
