package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kommo-operator/kommo-operator/webhook"
)

// runWebhook runs the webhook subcommand: the public server for Kommo's install
// redirect and "access revoked" hook. It holds no secrets and every replica serves.
func runWebhook(args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	opts := webhook.DefaultOptions()
	var (
		metricsAddr, probeAddr, kubeconfig, trusted string
		qps                                         float64
		burst                                       int
	)
	fs.StringVar(&opts.BindAddress, "bind-address", opts.BindAddress,
		"The address the Kommo routes (/kommo/<namespace>/<integration>/redirect and /revoke) are served on.")
	fs.StringVar(&metricsAddr, "metrics-bind-address", webhook.DefaultMetricsBindAddress,
		"The address the metrics endpoint binds to. Use 0 to disable it.")
	fs.StringVar(&probeAddr, "health-probe-bind-address", webhook.DefaultHealthProbeBindAddress,
		"The address the health probe endpoint binds to.")
	fs.StringVar(&kubeconfig, "kubeconfig", "",
		"Path to a kubeconfig. Default: $KUBECONFIG, the in-cluster config, then ~/.kube/config.")
	fs.Float64Var(&opts.RateLimit, "rate-limit", opts.RateLimit,
		"Requests per second allowed per client IP (IPv6: per /64). 0 disables the limit.")
	fs.IntVar(&opts.RateBurst, "rate-limit-burst", opts.RateBurst,
		"Burst of requests allowed per client IP.")
	fs.StringVar(&trusted, "trusted-proxy-cidrs", "",
		"Comma-separated CIDRs of reverse proxies (e.g. the ingress controller's pods) whose X-Forwarded-For "+
			"names the client. Default: none, the TCP peer is the client.")
	fs.IntVar(&opts.MaxPendingInstallations, "max-pending-installations", opts.MaxPendingInstallations,
		"Most installs per integration received in the last 20 minutes and not yet processed by the controller "+
			"(a failed attempt is processed). 0 disables the cap.")
	fs.IntVar(&opts.MaxPendingPerClient, "max-pending-installations-per-ip", opts.MaxPendingPerClient,
		"Most of those pending installs one client IP (IPv6: one /64) may hold in this replica; an install that becomes "+
			"a working grant gives its place back. 0 disables the share.")
	fs.DurationVar(&opts.RequestDeadline, "request-deadline", opts.RequestDeadline,
		"Every request is answered within this time; writes the API server has not confirmed by then are retried "+
			"in the background for the code's 20 minutes. Kommo waits at most 3s, network included.")
	fs.BoolVar(&opts.EnableHTTP2, "enable-http2", false,
		"Also serve cleartext HTTP/2 (h2c) on --bind-address. Off by default because of HTTP/2's denial-of-service history.")
	fs.DurationVar(&opts.ShutdownDelay, "shutdown-delay", opts.ShutdownDelay,
		"On SIGTERM, go on serving (unready) this long before closing the listener, while endpoints stop sending traffic.")
	fs.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", opts.ShutdownTimeout,
		"After the shutdown delay, wait this long for in-flight requests and background writes. Keep the preStop "+
			"hook plus --shutdown-delay plus --shutdown-timeout below terminationGracePeriodSeconds.")
	fs.Float64Var(&qps, "kube-api-qps", webhook.DefaultKubeAPIQPS, "Requests per second to the Kubernetes API server.")
	fs.IntVar(&burst, "kube-api-burst", webhook.DefaultKubeAPIBurst, "Burst of requests to the Kubernetes API server.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	proxies, err := webhook.ParseCIDRs(trusted)
	if err != nil {
		return fmt.Errorf("--trusted-proxy-cidrs: %w", err)
	}
	opts.TrustedProxies = proxies
	// The readiness write probe runs in the webhook's own namespace (downward API).
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		opts.ProbeNamespace = ns
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return fmt.Errorf("finding the cluster: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.UserAgent = "kommo-operator-webhook"

	mgrOpts := webhook.ManagerOptions(webhook.NewScheme(), opts)
	mgrOpts.Metrics = metricsserver.Options{BindAddress: metricsAddr}
	mgrOpts.HealthProbeBindAddress = probeAddr
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if _, err := webhook.Setup(mgr, opts); err != nil {
		return err
	}
	ctrl.Log.WithName("webhook").Info("Starting", "bindAddress", opts.BindAddress,
		"metricsBindAddress", metricsAddr, "healthProbeBindAddress", probeAddr, "goMemoryLimit", runtimeMemoryLimit())
	return mgr.Start(ctrl.SetupSignalHandler())
}
