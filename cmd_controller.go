package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"math"
	"time"

	"k8s.io/utils/ptr"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kommo-operator/kommo-operator/controllers"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// runController runs the reconcilers of KommoIntegration and KommoInstallation.
func runController(args []string) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	var (
		kubeconfig      = fs.String("kubeconfig", "", "Path to a kubeconfig. Default: $KUBECONFIG, in-cluster config, ~/.kube/config.")
		metricsAddr     = fs.String("metrics-bind-address", ":8443", "Address of the metrics endpoint; \"0\" disables it.")
		metricsSecure   = fs.Bool("metrics-secure", true, "Serve metrics over HTTPS, to callers authenticated and authorized by the API server.")
		probeAddr       = fs.String("health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
		pprofAddr       = fs.String("pprof-bind-address", "0", "Address of Go's /debug/pprof profiles, unauthenticated: bind it to localhost; \"0\" disables it.")
		leaderElect     = fs.Bool("leader-elect", false, "Elect a leader so that only one replica reconciles.")
		leaderNamespace = fs.String("leader-election-namespace", "", "Namespace of the leader election Lease; required outside a cluster.")
		watchNamespace  = fs.String("watch-namespace", "", "Only reconcile objects in this namespace; all namespaces when empty.")
		concurrency     = fs.Int("max-concurrent-reconciles", 16, "Installations reconciled at once.")
		enableHTTP2     = fs.Bool("enable-http2", false, "Serve metrics over HTTP/2 (off: HTTP/2 rapid-reset mitigation).")
		kommoQPS        = fs.Float64("kommo-qps", kommo.DefaultQPS, "Requests per second to Kommo, per account host and in total (Kommo allows 7).")
		kommoEndpoint   = fs.String("kommo-endpoint", "", "Send every Kommo request to this base URL, original host in the Host header. Local runs and tests only.")
	)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return fmt.Errorf("finding the cluster: %w", err)
	}
	qps := *kommoQPS
	if qps <= 0 {
		qps = math.Inf(1)
	}
	kommoClient, err := kommo.NewClient(kommo.Options{
		Endpoint: *kommoEndpoint, QPS: qps, Observe: controllers.ObserveKommoRequest,
	})
	if err != nil {
		return fmt.Errorf("--kommo-endpoint: %w", err)
	}
	if *kommoEndpoint != "" {
		log.Info("WARNING: every Kommo request goes to --kommo-endpoint; never use this in production", "endpoint", *kommoEndpoint)
	}

	var tlsOpts []func(*tls.Config)
	if !*enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: *metricsAddr, SecureServing: *metricsSecure, TLSOpts: tlsOpts}
	if *metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	cacheOpts := controllers.CacheOptions(*watchNamespace)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        newScheme(),
		Cache:                         cacheOpts,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        *probeAddr,
		PprofBindAddress:              *pprofAddr,
		LeaderElection:                *leaderElect,
		LeaderElectionID:              "kommo-operator-controller.kommo-operator.io",
		LeaderElectionNamespace:       *leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
		// Reconciles in flight finish first: a single-use call runs to the write of its
		// result (singleUse below), and only then is the lease released.
		GracefulShutdownTimeout: ptr.To(shutdownTimeout),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	singleUse := &controllers.SingleUse{}
	if err := controllers.Setup(mgr, controllers.Options{Kommo: kommoClient, MaxConcurrentReconciles: *concurrency, SingleUse: singleUse}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("Starting the controller", "leaderElection", *leaderElect, "kommoQPS", qps, "goMemoryLimit", runtimeMemoryLimit())
	err = mgr.Start(ctrl.SetupSignalHandler())
	// A lost lease ends Start without waiting for reconciles; a code or refresh token
	// Kommo has answered for must still be written before the process exits.
	if n := singleUse.InFlight(); n > 0 {
		log.Info("Waiting for single-use Kommo calls to be written", "inFlight", n)
	}
	if !singleUse.Drain(shutdownTimeout) {
		log.Info("WARNING: exiting with single-use Kommo calls unwritten", "inFlight", singleUse.InFlight())
	}
	return err
}

// shutdownTimeout bounds the wait for reconciles on shutdown; it covers a single-use call
// with the write of its result. terminationGracePeriodSeconds in the manifests is longer.
const shutdownTimeout = 75 * time.Second
