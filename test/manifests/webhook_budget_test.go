package manifests_test

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/kommo-operator/kommo-operator/webhook"
)

// TestWebhookShutdownBudget: the webhook's shutdown fits its pod. The kubelet runs the
// preStop hook, then sends SIGTERM; the webhook serves unready for --shutdown-delay,
// then waits up to --shutdown-timeout for in-flight requests and background writes, and
// its manager allows one second more. All of it must end before the SIGKILL at
// terminationGracePeriodSeconds, or background writes still pending are lost. And the
// request deadline leaves most of Kommo's 3 seconds to the network.
func TestWebhookShutdownBudget(t *testing.T) {
	_, objs := render(t, "default")
	var d appsv1.Deployment
	find(t, objs, "Deployment", webhookName).decode(t, &d)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	defaults := webhook.DefaultOptions()
	duration := func(flag string, def time.Duration) time.Duration {
		t.Helper()
		v, ok := flagValue(c.Args[1:], flag)
		if !ok {
			return def
		}
		got, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("--%s=%s: %v", flag, v, err)
		}
		return got
	}
	var preStop time.Duration
	if h := c.Lifecycle; h != nil && h.PreStop != nil {
		if h.PreStop.Sleep == nil {
			t.Fatal("the preStop hook is not a sleep: its length cannot be checked")
		}
		preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
	}
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set (the default, 30 s, would be implicit)")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	delay := duration("shutdown-delay", defaults.ShutdownDelay)
	timeout := duration("shutdown-timeout", defaults.ShutdownTimeout)
	if used := preStop + delay + timeout + time.Second; used >= grace {
		t.Errorf("preStop %v + --shutdown-delay %v + --shutdown-timeout %v + 1s = %v, not below terminationGracePeriodSeconds %v",
			preStop, delay, timeout, used, grace)
	}
	if preStop == 0 && delay == 0 {
		t.Error("neither a preStop sleep nor --shutdown-delay: installs sent while the endpoint is being removed are refused")
	}
	if deadline := duration("request-deadline", defaults.RequestDeadline); deadline > time.Second {
		t.Errorf("--request-deadline %v leaves less than 2 of Kommo's 3 seconds to the network", deadline)
	}
}
