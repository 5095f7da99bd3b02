package webhook

import (
	"errors"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// Default listen addresses. They differ from the controller's so both run on one machine.
const (
	DefaultBindAddress            = ":8080"
	DefaultMetricsBindAddress     = ":8082"
	DefaultHealthProbeBindAddress = ":8083"
)

// Client-side limits on API server requests. Each install is two writes and Kommo gives
// 3 seconds: a token bucket in our own pod only turns a migration's burst into latency
// (100 per second held 100 concurrent installs a second each), so they sit above what
// an API server takes, and its priority and fairness protects it.
const (
	DefaultKubeAPIQPS   = 1000
	DefaultKubeAPIBurst = 2000
)

const (
	// maxQueryBytes bounds the raw query string: a code is about 1 KiB, the rest is small.
	maxQueryBytes = 4 << 10
	// maxCodeBytes bounds the authorization code. Kommo's codes are opaque strings of
	// about 700 to 1000 characters ("def50200…"); twice that leaves room for growth.
	maxCodeBytes = 2048
	// maxStateBytes matches the CRD's MaxLength of spec.authorization.state.
	maxStateBytes = 512
	// maxHeaderBytes bounds the request line and headers.
	maxHeaderBytes = 8 << 10
	// maxTrackedClients caps the per-IP rate limiter's buckets.
	maxTrackedClients = 100_000
	// defaultCodeLifetime is how long Kommo's authorization code is valid.
	defaultCodeLifetime = 20 * time.Minute
)

// Options configure the webhook. Start from DefaultOptions.
type Options struct {
	// BindAddress is where the Kommo routes are served (--bind-address).
	BindAddress string
	// RateLimit is the sustained requests per second allowed per client IP (IPv6: per
	// /64); zero or less disables the limit (--rate-limit).
	RateLimit float64
	// RateBurst is the burst allowed per client IP (--rate-limit-burst).
	RateBurst int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed
	// (--trusted-proxy-cidrs). Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// MaxPendingInstallations caps the installs per integration received in the last
	// CodeLifetime and not yet processed by the controller; zero or less disables the cap
	// (--max-pending-installations).
	MaxPendingInstallations int
	// MaxPendingPerClient is the share of MaxPendingInstallations one client IP (IPv6:
	// one /64) may hold in this replica: installs it sent within CodeLifetime that have
	// not become a working grant. Zero or less: no share, only the cap
	// (--max-pending-installations-per-ip).
	MaxPendingPerClient int
	// RequestDeadline is the time within which every request is answered, whatever the
	// API server does (--request-deadline). Writes not done by then go on in the
	// background for the code's lifetime. Kommo gives an install 3 seconds end to end:
	// the default of 1 s leaves most of them to the network between Kommo and the pod.
	RequestDeadline time.Duration
	// EnableHTTP2 also serves cleartext HTTP/2 (h2c) on BindAddress (--enable-http2). Off
	// by default: HTTP/2 has had rapid-reset and similar denial-of-service bugs.
	EnableHTTP2 bool
	// ShutdownDelay is how long the server goes on serving, unready, once asked to stop
	// (--shutdown-delay): endpoints and load balancers take a moment to stop sending
	// traffic, and an install refused then is lost for good.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long shutdown then waits for in-flight requests and
	// background writes (--shutdown-timeout). The preStop hook plus ShutdownDelay plus
	// ShutdownTimeout must fit in the pod's terminationGracePeriodSeconds: a SIGKILL
	// before background writes land loses their installs.
	ShutdownTimeout time.Duration
	// AttemptTimeout bounds one attempt at the writes of one request; a hung API server
	// connection is abandoned after it and the writes are tried again.
	AttemptTimeout time.Duration
	// WriteProbeInterval is how often the replica checks that the API server takes its
	// writes (a dry-run create); readiness fails while it does not. WriteProbeTimeout
	// bounds one check. ProbeNamespace is where the dry run is made: the webhook's own
	// namespace (POD_NAMESPACE), else "default".
	WriteProbeInterval time.Duration
	WriteProbeTimeout  time.Duration
	ProbeNamespace     string
	// CodeLifetime is how long Kommo's authorization code is valid; background writes and
	// the pending count use it. Tests shorten it.
	CodeLifetime time.Duration
}

// DefaultOptions are the defaults of the webhook subcommand's flags.
func DefaultOptions() Options {
	return Options{
		BindAddress:             DefaultBindAddress,
		RateLimit:               5,
		RateBurst:               20,
		MaxPendingInstallations: 500,
		MaxPendingPerClient:     50,
		RequestDeadline:         time.Second,
		ShutdownDelay:           5 * time.Second,
		ShutdownTimeout:         15 * time.Second,
		AttemptTimeout:          10 * time.Second,
		WriteProbeInterval:      5 * time.Second,
		WriteProbeTimeout:       3 * time.Second,
		ProbeNamespace:          "default",
		CodeLifetime:            defaultCodeLifetime,
	}
}

func (o *Options) validate() error {
	if o.BindAddress == "" {
		return errors.New("webhook: BindAddress is required")
	}
	if o.RequestDeadline <= 0 {
		return errors.New("webhook: the request deadline must be positive")
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultOptions().ShutdownTimeout
	}
	if o.ShutdownDelay < 0 {
		o.ShutdownDelay = 0
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultOptions().AttemptTimeout
	}
	if o.WriteProbeInterval <= 0 {
		o.WriteProbeInterval = DefaultOptions().WriteProbeInterval
	}
	if o.WriteProbeTimeout <= 0 {
		o.WriteProbeTimeout = DefaultOptions().WriteProbeTimeout
	}
	if o.ProbeNamespace == "" {
		o.ProbeNamespace = DefaultOptions().ProbeNamespace
	}
	if o.CodeLifetime <= 0 {
		o.CodeLifetime = defaultCodeLifetime
	}
	return nil
}

// NewScheme knows the kinds the webhook uses: Secrets and the operator's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(kommov1.AddToScheme(s))
	return s
}

// ManagerOptions are the controller-runtime manager options a webhook with opts runs
// with; callers set the metrics and health probe addresses. The cache holds only
// KommoIntegrations and KommoInstallations, without managedFields and with only the
// part of an installation's status the webhook reads (installationView), and refuses
// to start an informer for anything else; Secrets are never read through it (the
// webhook may not read Secrets at all). No leader election: every replica serves.
func ManagerOptions(scheme *runtime.Scheme, opts Options) manager.Options {
	// The server's own shutdown is bounded; this only has to let it finish.
	grace := opts.ShutdownDelay + opts.ShutdownTimeout + time.Second
	return manager.Options{
		Scheme:         scheme,
		LeaderElection: false,
		Cache: cache.Options{
			ReaderFailOnMissingInformer: true,
			DefaultTransform:            cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&kommov1.KommoIntegration{}:  {},
				&kommov1.KommoInstallation{}: {Transform: installationView},
			},
		},
		Client: client.Options{
			Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}},
		},
		GracefulShutdownTimeout: &grace,
	}
}
