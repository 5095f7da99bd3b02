// Package stack brings up the whole operator locally, the way a cluster runs it, for the
// demo (hack/demo, `make demo`, `make dev`) and the end-to-end tests (test/e2e):
//
//   - a real kube-apiserver and etcd (envtest, binaries from hack/envtest) with the CRDs;
//   - the RBAC of config/rbac, applied with kubectl, and one kubeconfig per component with
//     a token of its ServiceAccount, so every run proves the RBAC is enough;
//   - the Kommo simulator (hack/kommosim), the controller and the webhook as processes of
//     the real binaries, each in its own process group, output captured to a log file;
//     any number of replicas of each (the controllers leader-elected on a Lease), with
//     handles to SIGKILL or SIGTERM each and, under Options.Supervise, restarted the way
//     a Deployment would; and the API server can be stopped and started again in place;
//   - a namespace with a KommoIntegration whose client and channel the simulator knows.
//
// Its helpers act like Kommo over HTTP only: fetch a code from the simulator's control API
// and send the install redirect to the webhook, fetch a signed revoke hook and send it.
// Everything listens on 127.0.0.1; Stop ends every process it started.
package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

const (
	// SystemNamespace is where config/rbac puts the ServiceAccounts and the controller's
	// leader-election Lease.
	SystemNamespace = "kommo-operator-system"
	// ControllerServiceAccount and WebhookServiceAccount are the identities the two
	// processes run as (with a token of each).
	ControllerServiceAccount = "kommo-operator-controller"
	WebhookServiceAccount    = "kommo-operator-webhook"

	// Deadline bounds every wait of the stack and its callers; generous for a loaded
	// two-core machine.
	Deadline = 45 * time.Second

	// credentialsSecret holds the client and channel secrets in the integration's namespace.
	credentialsSecret = "wa-bridge-kommo"
)

// Options configure Start.
type Options struct {
	// Binaries to run; see Build.
	Binaries Binaries
	// Dir receives the kubeconfigs and the processes' logs. It is created if needed.
	Dir string
	// Namespace of the KommoIntegration; default "demo".
	Namespace string
	// Integration is the KommoIntegration's name; default "wa-bridge".
	Integration string
	// LogLevel of the controller and the webhook (--zap-log-level); default "debug", so
	// that the leak scan reads everything they can say.
	LogLevel string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)

	// ControllerReplicas and WebhookReplicas default to 1.
	ControllerReplicas, WebhookReplicas int
	// Supervise restarts every replica whose process ends (see Replica); without it a
	// process that ends unasked is reported by Crashed.
	Supervise bool
	// SimulatorArgs, ControllerArgs and WebhookArgs are appended to each process's flags;
	// a flag given again overrides the stack's own (the benchmarks lift limits with them).
	SimulatorArgs, ControllerArgs, WebhookArgs []string
	// ControllerUpgradeFrom, when set, is an older kommo-operator binary the controller
	// replicas start with; UpgradeControllers rolls them to this tree's.
	ControllerUpgradeFrom string
	// ControllerMetrics is kept for callers that ask for the metrics: every controller
	// replica serves them over plain HTTP (--metrics-secure=false), the first one's at
	// ControllerMetricsURL.
	ControllerMetrics bool
	// ControllerPprof serves Go's profiles of every controller replica (PprofURL); the
	// previous release has no such flag, so not with ControllerUpgradeFrom.
	ControllerPprof bool
	// ControllerEnv and WebhookEnv are added to the processes' environment (e.g. the
	// KOMMO_MEMORY_LIMIT the manifests set from the container's memory limit).
	ControllerEnv, WebhookEnv []string
}

// Stack is a running operator with everything around it.
type Stack struct {
	// Env is the control plane; Env.Client is an administrator.
	Env *testenv.Env
	// Client is an uncached administrator client (Env.Client).
	Client client.Client

	Namespace   string
	Integration string
	ClientID    string
	ChannelID   string
	RedirectURI string

	// SimURL is the simulator (Kommo APIs and its /_sim/ control API); WebhookURL the
	// first webhook replica's Kommo routes (Redirect and RevokeHook go to any ready one).
	SimURL     string
	WebhookURL string
	// ControllerMetricsURL is the controller's /metrics when Options.ControllerMetrics is
	// set.
	ControllerMetricsURL string

	// Controllers and Webhooks are the replicas; ControllerLog and WebhookLog the first
	// ones' logs.
	Controllers []*Replica
	Webhooks    []*Replica

	// AdminKubeconfig is for people and kubectl; the other two hold tokens of the
	// components' ServiceAccounts.
	AdminKubeconfig      string
	ControllerKubeconfig string
	WebhookKubeconfig    string
	// Kubectl is the kubectl built beside the API server.
	Kubectl string

	Dir           string
	SimulatorLog  string
	ControllerLog string
	WebhookLog    string

	clientSecret  string
	channelSecret string
	opts          Options
	http          *http.Client

	mu      sync.Mutex
	procs   []*process
	apiDown bool
	// supervise ends the replicas' supervisors and readiness probes.
	supervise      context.Context
	endSupervision context.CancelFunc
	supervisors    sync.WaitGroup
	// secrets are the secrets the stack made or saw, value → what it is.
	secrets map[string]string

	stopOnce sync.Once
	stopErr  error
}

// Start brings everything up. On error, whatever was started is stopped again.
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	if o.Namespace == "" {
		o.Namespace = "demo"
	}
	if o.Integration == "" {
		o.Integration = "wa-bridge"
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	o.ControllerReplicas = max(1, o.ControllerReplicas)
	o.WebhookReplicas = max(1, o.WebhookReplicas)
	for _, b := range []string{o.Binaries.Operator, o.Binaries.Simulator} {
		if !isFile(b) {
			return nil, fmt.Errorf("stack: binary %q not found (build it with `make build build-sim`)", b)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	s = &Stack{
		Namespace:     o.Namespace,
		Integration:   o.Integration,
		ClientID:      string(uuid.NewUUID()),
		ChannelID:     string(uuid.NewUUID()),
		Dir:           dir,
		SimulatorLog:  filepath.Join(dir, "kommosim.log"),
		clientSecret:  "client-secret-" + RandomHex(24),
		channelSecret: RandomHex(20), // 40 hex characters, like Kommo's
		opts:          o,
		http:          &http.Client{Timeout: 10 * time.Second},
		secrets:       map[string]string{},
	}
	// Kommo calls the public Redirect URI (an Ingress in front of the webhook); it only
	// has to match between the integration and the simulator.
	s.RedirectURI = "https://kommo-hooks.example.com/kommo/" + s.Namespace + "/" + s.Integration + "/redirect"
	s.remember("client secret", s.clientSecret)
	s.remember("channel secret", s.channelSecret)
	s.supervise, s.endSupervision = context.WithCancel(context.Background())
	s.Controllers = s.replicas("controller", o.ControllerReplicas, s.controllerArgs)
	s.Webhooks = s.replicas("webhook", o.WebhookReplicas, s.webhookArgs)
	s.ControllerLog, s.WebhookLog = s.Controllers[0].LogPath, s.Webhooks[0].LogPath
	for _, f := range append(s.componentLogs(), s.SimulatorLog) {
		_ = os.Remove(f)
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
			s = nil
		}
	}()

	start := time.Now()
	if s.Env, err = testenv.Start(); err != nil {
		return s, err
	}
	s.Client, s.Kubectl = s.Env.Client, s.Env.Kubectl()
	o.Logf("control plane up (kube-apiserver, etcd, CRDs) in %s", since(start))

	step := time.Now()
	if err := s.setUpRBAC(ctx); err != nil {
		return s, err
	}
	o.Logf("RBAC of config/rbac applied; controller and webhook run as their ServiceAccounts (%s)", since(step))

	step = time.Now()
	if err := s.startSimulator(ctx); err != nil {
		return s, err
	}
	if err := s.createIntegration(ctx); err != nil {
		return s, err
	}
	for _, r := range append(slices.Clone(s.Controllers), s.Webhooks...) {
		if err := r.start(ctx, true); err != nil {
			return s, err
		}
		if o.Supervise {
			s.supervisors.Go(func() { r.supervise(s.supervise) })
		}
		s.supervisors.Go(func() { r.probeReadiness(s.supervise) })
	}
	s.WebhookURL = s.Webhooks[0].URL()
	s.ControllerMetricsURL = s.Controllers[0].MetricsURL()
	if err := s.waitIntegrationReady(ctx); err != nil {
		return s, err
	}
	o.Logf("simulator, controller and webhook ready in %s (total %s)", since(step), since(start))
	return s, nil
}

// Stop stops the webhooks, the controllers and the simulator (process groups: SIGTERM,
// then SIGKILL), then the control plane. It is safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		s.endSupervision()
		var wg sync.WaitGroup
		for _, r := range append(slices.Clone(s.Controllers), s.Webhooks...) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.retire(shutdownGrace)
			}()
		}
		wg.Wait()
		s.supervisors.Wait()
		s.mu.Lock()
		procs := s.procs
		s.mu.Unlock()
		for _, p := range procs {
			p.stop(3 * time.Second)
		}
		if s.Env != nil {
			if err := s.Env.Stop(); err != nil {
				s.stopErr = fmt.Errorf("stopping the control plane: %w", err)
			}
		}
	})
	return s.stopErr
}

// Crashed returns an error for every process that exited while it should be running;
// under Options.Supervise only the simulator's (the replicas' restarts are in their Stats).
func (s *Stack) Crashed() error {
	var errs []error
	for _, r := range append(slices.Clone(s.Controllers), s.Webhooks...) {
		errs = append(errs, r.crashErr())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		p.mu.Lock()
		stopped := p.stopped
		p.mu.Unlock()
		if done, err := p.exited(); done && !stopped {
			errs = append(errs, fmt.Errorf("%s exited: %v (log %s)", p.name, err, p.logPath))
		}
	}
	return errors.Join(errs...)
}

// setUpRBAC applies config/rbac (kubectl kustomize | kubectl apply) and writes the
// kubeconfigs: the administrator's and one per component with a token of its
// ServiceAccount. It returns once both identities have their permissions.
func (s *Stack) setUpRBAC(ctx context.Context) error {
	s.AdminKubeconfig = filepath.Join(s.Dir, "admin.kubeconfig")
	if err := s.Env.Kubeconfig(s.AdminKubeconfig); err != nil {
		return fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if err := s.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	manifests, err := s.kubectl(ctx, nil, "kustomize", filepath.Join(s.Env.Root, "config", "rbac"))
	if err != nil {
		return err
	}
	if _, err := s.kubectl(ctx, manifests, "--kubeconfig", s.AdminKubeconfig, "apply", "-f", "-"); err != nil {
		return err
	}

	admin, err := clientcmd.LoadFromFile(s.AdminKubeconfig)
	if err != nil {
		return err
	}
	s.ControllerKubeconfig = filepath.Join(s.Dir, "controller.kubeconfig")
	s.WebhookKubeconfig = filepath.Join(s.Dir, "webhook.kubeconfig")
	for path, sa := range map[string]string{s.ControllerKubeconfig: ControllerServiceAccount, s.WebhookKubeconfig: WebhookServiceAccount} {
		token, err := s.serviceAccountToken(ctx, sa)
		if err != nil {
			return err
		}
		cfg := admin.DeepCopy()
		for name := range cfg.AuthInfos {
			cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
		}
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			return err
		}
	}

	// RBAC takes effect through the API server's informers: wait until each identity can
	// do what it needs first, through its own kubeconfig.
	ctrl, err := s.ClientFor(s.ControllerKubeconfig)
	if err != nil {
		return err
	}
	hook, err := s.ClientFor(s.WebhookKubeconfig)
	if err != nil {
		return err
	}
	return Poll(ctx, Deadline, "the ServiceAccounts' permissions", func(ctx context.Context) (bool, string, error) {
		if err := ctrl.List(ctx, &coordinationv1.LeaseList{}, client.InNamespace(SystemNamespace)); err != nil {
			return false, "controller: " + err.Error(), nil
		}
		if err := ctrl.List(ctx, &kommov1.KommoInstallationList{}); err != nil {
			return false, "controller: " + err.Error(), nil
		}
		if err := hook.List(ctx, &kommov1.KommoIntegrationList{}); err != nil {
			return false, "webhook: " + err.Error(), nil
		}
		return true, "", nil
	})
}

// serviceAccountToken is a bound token of a ServiceAccount of config/rbac, as the
// kubelet projects into a pod: the components authenticate as pods do, not through an
// administrator's impersonation, which costs the API server an authorization check of
// its own on every request.
func (s *Stack) serviceAccountToken(ctx context.Context, name string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: name}}
	// Longer than any run: a token that expired mid-run would be the stack's failure.
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))}}
	if err := s.Client.SubResource("token").Create(ctx, sa, req); err != nil {
		return "", fmt.Errorf("a token for ServiceAccount %s: %w", name, err)
	}
	// A component that logged its own credential is a leak like any other.
	s.remember("ServiceAccount token", req.Status.Token)
	return req.Status.Token, nil
}

// ClientFor returns an uncached client that uses a kubeconfig.
func (s *Stack) ClientFor(kubeconfig string) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS = -1 // no client-side throttling (client-go's default is 5 per second)
	return client.New(cfg, client.Options{Scheme: s.Env.Scheme})
}

// kubectl runs the kubectl beside the API server and returns its stdout.
func (s *Stack) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	if args[0] != "kustomize" {
		args = append([]string{"--cache-dir", filepath.Join(s.Dir, "kube-cache")}, args...)
	}
	cmd := exec.CommandContext(ctx, s.Kubectl, args...)
	cmd.Env = childEnv()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// startSimulator starts hack/kommosim with the integration and the channel registered.
func (s *Stack) startSimulator(ctx context.Context) error {
	first := make(chan string, 1)
	p, err := startProcess("simulator", s.SimulatorLog, s.opts.Binaries.Simulator, nil, append([]string{
		"--listen", "127.0.0.1:0",
		"--client-id", s.ClientID, "--client-secret", s.clientSecret, "--redirect-uri", s.RedirectURI,
		"--channel-id", s.ChannelID, "--channel-secret", s.channelSecret,
	}, s.opts.SimulatorArgs...), first)
	if err != nil {
		return err
	}
	s.track(p)
	timer := time.NewTimer(Deadline)
	defer timer.Stop()
	select {
	case line, ok := <-first:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			<-p.done
			return fmt.Errorf("the simulator did not start (%v); log %s:\n%s", p.err, p.logPath, p.tail(20))
		}
		s.SimURL = addr
	case <-timer.C:
		return fmt.Errorf("the simulator printed nothing within %s", Deadline)
	case <-ctx.Done():
		return ctx.Err()
	}
	u, err := url.Parse(s.SimURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("the simulator printed %q, want listening on http://ADDR", s.SimURL)
	}
	return nil
}

// createIntegration creates the namespace, the Secret with the client and channel
// secrets and the KommoIntegration.
func (s *Stack) createIntegration(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace}}
	if err := s.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: credentialsSecret, Namespace: s.Namespace},
		StringData: map[string]string{"client_secret": s.clientSecret, "channel_secret": s.channelSecret},
	}
	if err := s.Client.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating Secret %s: %w", credentialsSecret, err)
	}
	integration := &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: s.Integration, Namespace: s.Namespace},
		Spec: kommov1.KommoIntegrationSpec{
			ClientID:        s.ClientID,
			ClientSecretRef: kommov1.SecretKeyRef{Name: credentialsSecret, Key: "client_secret"},
			RedirectURI:     s.RedirectURI,
			AccountDomains:  []string{"kommo.com"},
			Chat: &kommov1.ChatSpec{
				ChannelID: s.ChannelID,
				SecretRef: kommov1.SecretKeyRef{Name: credentialsSecret, Key: "channel_secret"},
			},
		},
	}
	if err := s.Client.Create(ctx, integration); err != nil {
		return fmt.Errorf("creating KommoIntegration %s: %w", s.Integration, err)
	}
	return nil
}

// replicas makes n replica slots of a component; one replica keeps the component's
// plain name (controller.log), more are numbered (controller-0.log, …).
func (s *Stack) replicas(component string, n int, args func(*Replica) []string) []*Replica {
	out := make([]*Replica, n)
	for i := range out {
		name := component
		if n > 1 {
			name = fmt.Sprintf("%s-%d", component, i)
		}
		out[i] = &Replica{Name: name, LogPath: filepath.Join(s.Dir, name+".log"), component: component, s: s, args: args}
		if component == "controller" {
			out[i].binary = s.opts.ControllerUpgradeFrom
		}
	}
	return out
}

// componentLogs are the logs of every controller and webhook replica.
func (s *Stack) componentLogs() []string {
	var logs []string
	for _, r := range append(slices.Clone(s.Controllers), s.Webhooks...) {
		logs = append(logs, r.LogPath)
	}
	return logs
}

// controllerArgs run `kommo-operator controller` as its ServiceAccount, leader-elected
// as in the manifests, against the simulator; metrics in plain HTTP, to read who leads.
func (s *Stack) controllerArgs(r *Replica) []string {
	var pprof []string
	if s.opts.ControllerPprof {
		pprof = []string{"--pprof-bind-address", r.pprof}
	}
	return append(append([]string{"controller",
		"--kubeconfig", s.ControllerKubeconfig,
		"--kommo-endpoint", s.SimURL,
		"--metrics-bind-address", r.metrics, "--metrics-secure=false",
		"--health-probe-bind-address", r.probe,
		"--leader-elect", "--leader-election-namespace", SystemNamespace,
		"--zap-log-level", s.opts.LogLevel, "--zap-time-encoding", "rfc3339nano",
	}, pprof...), s.opts.ControllerArgs...)
}

// webhookArgs run `kommo-operator webhook` as its ServiceAccount.
func (s *Stack) webhookArgs(r *Replica) []string {
	return append([]string{"webhook",
		"--kubeconfig", s.WebhookKubeconfig,
		"--bind-address", r.bind,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", r.probe,
		"--zap-log-level", s.opts.LogLevel, "--zap-time-encoding", "rfc3339nano",
	}, s.opts.WebhookArgs...)
}

// shutdownGrace bounds a process's own shutdown before SIGKILL when the stack stops it.
const shutdownGrace = 3 * time.Second

// RestartController stops the first controller replica (SIGTERM, as a rollout does) and
// starts it again with the same flags; it returns once the new process is ready.
func (s *Stack) RestartController(ctx context.Context) error {
	r := s.Controllers[0]
	if err := r.restart(ctx, shutdownGrace); err != nil {
		return err
	}
	s.ControllerMetricsURL = r.MetricsURL()
	return nil
}

// UpgradeControllers rolls the controller replicas, one at a time as a Deployment's
// rolling update does, from Options.ControllerUpgradeFrom to this tree's binary: each is
// sent SIGTERM, replaced by its supervisor, and waited for until Ready.
func (s *Stack) UpgradeControllers(ctx context.Context) error {
	for _, r := range s.Controllers {
		r.mu.Lock()
		r.binary = ""
		r.mu.Unlock()
		old := r.PID()
		r.Term()
		if err := Poll(ctx, 2*Deadline, r.Name+" upgraded and Ready", func(context.Context) (bool, string, error) {
			pid := r.PID()
			return pid != 0 && pid != old && r.Ready(), fmt.Sprintf("pid %d, ready %v", pid, r.Ready()), nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// ControllerPID is the process id of the first controller replica, 0 when none runs.
func (s *Stack) ControllerPID() int { return s.Controllers[0].PID() }

func (s *Stack) track(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

// waitIntegrationReady waits until the controller, once leader, has found the
// integration's Secrets, and the controller holds the Lease.
func (s *Stack) waitIntegrationReady(ctx context.Context) error {
	return Poll(ctx, Deadline, "KommoIntegration "+s.Integration+" Ready", func(ctx context.Context) (bool, string, error) {
		if err := s.Crashed(); err != nil {
			return false, "", err
		}
		in := &kommov1.KommoIntegration{}
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Integration}, in); err != nil {
			return false, err.Error(), nil
		}
		c := meta.FindStatusCondition(in.Status.Conditions, kommov1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue {
			return false, fmt.Sprintf("Ready condition %+v", c), nil
		}
		lease := &coordinationv1.Lease{}
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: SystemNamespace, Name: LeaseName}, lease); err != nil {
			return false, "lease: " + err.Error(), nil
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return false, "the Lease has no holder", nil
		}
		return true, "", nil
	})
}

// LeaseName is the controller's leader-election Lease in SystemNamespace.
const LeaseName = "kommo-operator-controller.kommo-operator.io"

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

// RandomHex returns n random bytes in hex, for made-up secrets.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
