package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/controllers"
	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	integrationName = "wa-bridge"
	channelID       = "344a5002-f8ca-454d-af3d-396180102ac7"
	redirectURI     = "https://hooks.example.test/kommo/ns/wa-bridge/redirect"
	// wait bounds every poll; generous for a loaded two-core machine.
	wait = 45 * time.Second
)

// harness is one test's world: a namespace, a Kommo simulator and a controller manager
// watching only that namespace, configured as in production.
type harness struct {
	t        testing.TB
	opts     harnessOptions
	ctx      context.Context
	ns       string
	sim      *kommotest.Simulator
	simURL   string
	clientID string
	secret   string // the client secret
	chanSec  string // the channel secret
	logs     *testenv.Buffer
	stop     func()
	clock    *offsetClock
	// secretReads counts the controller's reads of single Secrets from the API server, by name.
	secretReads sync.Map
	// secretDataLists counts its lists and watches of Secrets with their data (not as
	// metadata): a typed Secret informer, which would hold every token in the cache.
	secretDataLists atomic.Int64
}

// countSecretReads wraps the controller's transport to count GETs of single Secrets
// (lists and watches are the cache's).
func (h *harness) countSecretReads(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if _, name, ok := strings.Cut(req.URL.Path, "/secrets/"); ok && req.Method == http.MethodGet {
			n, _ := h.secretReads.LoadOrStore(name, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
		if strings.HasSuffix(req.URL.Path, "/secrets") && req.Method == http.MethodGet &&
			!strings.Contains(req.Header.Get("Accept"), "as=PartialObjectMetadata") {
			h.secretDataLists.Add(1)
		}
		return rt.RoundTrip(req)
	})
}

// secretReadCounts returns and resets the counts of countSecretReads.
func (h *harness) secretReadCounts() map[string]int64 {
	out := map[string]int64{}
	h.secretReads.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		h.secretReads.Delete(k)
		return true
	})
	return out
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type harnessOptions struct {
	sim     kommotest.Options
	noChat  bool
	domains []string
	// backoffScale multiplies the controller's persisted backoff; 0 means 0.02.
	backoffScale float64
	// kommoQPS, when set, is the controller's Kommo budget, with a burst of 1; default
	// 50/s with a burst of 50.
	kommoQPS float64
	// workers is the controller's MaxConcurrentReconciles, at least 2 (the default).
	workers int
}

// offsetClock is the controller's clock in tests: real time plus an offset the test moves
// forward, so that expiries and retention periods pass without waiting for them.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	o.sim.AutoAccounts = true
	if o.sim.QPS == 0 {
		o.sim.QPS = -1 // the controller's own limiter is tested in the kommo package
	}
	if o.backoffScale == 0 {
		o.backoffScale = 0.02
	}
	sim, srv := kommotest.NewServer(o.sim)
	t.Cleanup(srv.Close)
	h := &harness{
		t: t, opts: o, ctx: context.Background(), ns: env.Namespace(t), sim: sim, simURL: srv.URL,
		clientID: uuid(), secret: "client-secret-" + randHex(16), chanSec: randHex(20),
		logs: &testenv.Buffer{}, clock: &offsetClock{},
	}
	sim.AddIntegration(h.clientID, h.secret, redirectURI)
	sim.AddChannel(channelID, h.chanSec)
	sim.BindChannel(channelID, h.clientID)

	h.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge-kommo", Namespace: h.ns},
		StringData: map[string]string{"client_secret": h.secret, "channel_secret": h.chanSec},
	})
	integration := &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: integrationName, Namespace: h.ns, Labels: map[string]string{"argocd.argoproj.io/instance": "wa"}},
		Spec: kommov1.KommoIntegrationSpec{
			ClientID:            h.clientID,
			ClientSecretRef:     kommov1.SecretKeyRef{Name: "wa-bridge-kommo", Key: "client_secret"},
			RedirectURI:         redirectURI,
			AccountDomains:      o.domains,
			TokenSecretTemplate: &kommov1.SecretTemplate{Labels: map[string]string{"app.kubernetes.io/part-of": "wa-bridge"}},
		},
	}
	if !o.noChat {
		integration.Spec.Chat = &kommov1.ChatSpec{ChannelID: channelID, SecretRef: kommov1.SecretKeyRef{Name: "wa-bridge-kommo", Key: "channel_secret"}}
	}
	h.create(integration)
	h.startController()
	t.Cleanup(h.assertNoSecretsLeaked)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", h.logs.String())
		}
	})
	return h
}

// startController starts a manager with the production cache options, restricted to the
// test's namespace, and stops it at cleanup (or earlier, via h.stop).
func (h *harness) startController() {
	h.t.Helper()
	logger := zap.New(zap.WriteTo(h.logs), zap.Level(zapcore.DebugLevel))
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(h.countSecretReads)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 env.Scheme,
		Cache:                  controllers.CacheOptions(h.ns),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 logger,
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	qps, burst := 50.0, 50
	if h.opts.kommoQPS > 0 {
		qps, burst = h.opts.kommoQPS, 1
	}
	kc, err := kommo.NewClient(kommo.Options{Endpoint: h.simURL, QPS: qps, Burst: burst, Observe: controllers.ObserveKommoRequest,
		BlockedPause: time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := controllers.Setup(mgr, controllers.Options{Kommo: kc, MaxConcurrentReconciles: max(2, h.opts.workers), BackoffScale: h.opts.backoffScale, Now: h.clock.Now}); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}
	h.t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
			h.stop = nil
		}
	})
}

// stopController stops the manager, as a crash or a rollout would.
func (h *harness) stopController() {
	h.stop()
	h.stop = nil
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := env.Client.Create(h.ctx, obj); err != nil {
		h.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// install does what the webhook does with Kommo's redirect: a create-only code Secret,
// then spec.authorization on the installation. It returns the installation's name.
func (h *harness) install(host string) string {
	h.t.Helper()
	code := h.sim.IssueCode(host, h.clientID)
	return h.installCode(host, code)
}

func (h *harness) installCode(host, code string) string {
	h.t.Helper()
	return h.installWith(host, code, func(*kommov1.Authorization) {})
}

// installWith is installCode with a chance to set fromWidget or state.
func (h *harness) installWith(host, code string, mutate func(*kommov1.Authorization)) string {
	h.t.Helper()
	name := integrationName + "." + host
	codeSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "kommo-code-", Namespace: h.ns,
			Labels: map[string]string{kommov1.LabelManagedBy: kommov1.ManagedByValue, kommov1.LabelIntegration: integrationName},
		},
		Type: kommov1.SecretTypeAuthorizationCode,
		Data: map[string][]byte{kommov1.AuthorizationCodeKey: []byte(code)},
	}
	h.create(codeSecret)
	auth := &kommov1.Authorization{
		CodeSecretRef: kommov1.SecretKeyRef{Name: codeSecret.Name, Key: kommov1.AuthorizationCodeKey},
		ReceivedAt:    metav1.NewMicroTime(time.Now()),
	}
	mutate(auth)
	inst := &kommov1.KommoInstallation{}
	err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, inst)
	switch {
	case apierrors.IsNotFound(err):
		h.create(&kommov1.KommoInstallation{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns, Labels: map[string]string{kommov1.LabelIntegration: integrationName}},
			Spec: kommov1.KommoInstallationSpec{
				IntegrationRef: kommov1.LocalObjectReference{Name: integrationName}, AccountDomain: host, Authorization: auth,
			},
		})
	case err != nil:
		h.t.Fatal(err)
	default:
		h.mergePatch(inst, map[string]any{"spec": map[string]any{"authorization": auth}})
	}
	return name
}

// mergePatch applies a JSON merge patch to obj, as the webhook does to its own fields.
func (h *harness) mergePatch(obj client.Object, patch map[string]any) {
	h.t.Helper()
	data := mustJSON(h.t, patch)
	if err := env.Client.Patch(h.ctx, obj, client.RawPatch(types.MergePatchType, data)); err != nil {
		h.t.Fatalf("patching %s: %v", obj.GetName(), err)
	}
}

func (h *harness) get(name string) *kommov1.KommoInstallation {
	h.t.Helper()
	inst := &kommov1.KommoInstallation{}
	if err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, inst); err != nil {
		h.t.Fatalf("getting installation %s: %v", name, err)
	}
	return inst
}

// poke makes the controller look at an installation now (an annotation change), for
// tests that moved its clock.
func (h *harness) poke(name string) {
	h.t.Helper()
	h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		"test/poke": strconv.FormatInt(time.Now().UnixNano(), 10)}}})
}

// backoff returns the installation's backoff entry for concern, nil when none.
func backoff(inst *kommov1.KommoInstallation, concern string) *kommov1.Backoff {
	for i := range inst.Status.Backoffs {
		if inst.Status.Backoffs[i].Concern == concern {
			return &inst.Status.Backoffs[i]
		}
	}
	return nil
}

// eventually polls cond until it holds or the deadline passes; describe says what was
// last seen, for the failure message.
func (h *harness) eventually(what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
	h.t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

// waitCondition waits until the installation's condition has status and reason.
func (h *harness) waitCondition(name, typ string, status metav1.ConditionStatus, reason string) *kommov1.KommoInstallation {
	h.t.Helper()
	var inst *kommov1.KommoInstallation
	h.eventually(fmt.Sprintf("%s %s=%s/%s", name, typ, status, reason), func() (bool, string) {
		inst = h.get(name)
		c := meta.FindStatusCondition(inst.Status.Conditions, typ)
		if c == nil {
			return false, "no condition"
		}
		return c.Status == status && c.Reason == reason, fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	})
	return inst
}

func (h *harness) waitReady(name string) *kommov1.KommoInstallation {
	h.t.Helper()
	return h.waitCondition(name, kommov1.ConditionReady, metav1.ConditionTrue, kommov1.ReasonReady)
}

// tokenSecret returns the token Secret of an installation, nil when it does not exist.
func (h *harness) tokenSecret(name string) *corev1.Secret {
	h.t.Helper()
	s := &corev1.Secret{}
	err := env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name + "-token"}, s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// events returns the events about an installation, as reason → notes.
func (h *harness) events(name string) map[string][]string {
	h.t.Helper()
	list := &eventsv1.EventList{}
	if err := env.Client.List(h.ctx, list, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range list.Items {
		if name == "" || e.Regarding.Name == name {
			out[e.Reason] = append(out[e.Reason], e.Note)
		}
	}
	return out
}

func (h *harness) waitEvent(name, reason string) {
	h.t.Helper()
	h.eventually("event "+reason, func() (bool, string) {
		ev := h.events(name)
		return len(ev[reason]) > 0, fmt.Sprint(ev)
	})
}

// assertNoSecretsLeaked scans everything the controller logged, every event and every
// condition and status in the namespace for any secret, token or code Kommo issued or knew.
func (h *harness) assertNoSecretsLeaked() {
	secrets := append(h.sim.Secrets(), h.secret, h.chanSec)
	var texts []string
	texts = append(texts, h.logs.String())
	for reason, notes := range h.events("") {
		texts = append(texts, reason+" "+strings.Join(notes, " "))
	}
	insts := &kommov1.KommoInstallationList{}
	_ = env.Client.List(h.ctx, insts, client.InNamespace(h.ns))
	for _, i := range insts.Items {
		texts = append(texts, string(mustJSON(h.t, i.Status)))
	}
	ints := &kommov1.KommoIntegrationList{}
	_ = env.Client.List(h.ctx, ints, client.InNamespace(h.ns))
	for _, i := range ints.Items {
		texts = append(texts, string(mustJSON(h.t, i.Status)))
	}
	all := strings.Join(texts, "\n")
	if len(h.logs.String()) == 0 {
		h.t.Errorf("the controller logged nothing: the leak scan would prove nothing")
	}
	for _, s := range secrets {
		if len(s) >= 8 && strings.Contains(all, s) {
			h.t.Errorf("a secret issued by Kommo (%d chars, starting %q) appears in logs, events or status", len(s), s[:4])
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}
