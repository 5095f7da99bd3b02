package webhook

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

func TestPendingCountsFollowTheInformer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	lifetime := 20 * time.Minute
	p := newPendingCounts(lifetime)
	h := p.handler()
	bridge := client.ObjectKey{Namespace: "ns", Name: "bridge"}
	inst := func(name, integration string, at time.Time) *kommov1.KommoInstallation {
		return &kommov1.KommoInstallation{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: kommov1.KommoInstallationSpec{
				IntegrationRef: kommov1.LocalObjectReference{Name: integration},
				Authorization:  &kommov1.Authorization{ReceivedAt: metav1.NewMicroTime(at)},
			},
		}
	}
	a, b := inst("a", "bridge", t0), inst("b", "bridge", t0.Add(5*time.Minute))
	h.OnAdd(a, false)
	h.OnAdd(b, false)
	h.OnAdd(inst("c", "other", t0.Add(20*time.Minute)), false)
	if got := p.count(bridge, "", t0.Add(6*time.Minute)); got != 2 {
		t.Errorf("count %d, want 2", got)
	}
	if got := p.count(bridge, "a", t0.Add(6*time.Minute)); got != 1 {
		t.Errorf("count without a %d, want 1", got)
	}

	// a is processed: it stops counting.
	done := a.DeepCopy()
	done.Status.InstalledAt = &done.Spec.Authorization.ReceivedAt
	h.OnUpdate(a, done)
	if got := p.count(bridge, "", t0.Add(6*time.Minute)); got != 1 {
		t.Errorf("count after a was processed %d, want 1", got)
	}
	// A reinstall onto a is pending again.
	again := done.DeepCopy()
	again.Spec.Authorization.ReceivedAt = metav1.NewMicroTime(t0.Add(10 * time.Minute))
	h.OnUpdate(done, again)
	if got := p.count(bridge, "", t0.Add(11*time.Minute)); got != 2 {
		t.Errorf("count after a reinstall %d, want 2", got)
	}
	// b's code expires at t0+25m: it stops counting then, not before.
	if got := p.count(bridge, "", t0.Add(25*time.Minute-time.Microsecond)); got != 2 {
		t.Errorf("count just before b expired %d, want 2", got)
	}
	if got := p.count(bridge, "", t0.Add(25*time.Minute)); got != 1 {
		t.Errorf("count once b expired %d, want 1", got)
	}
	// A deletion the informer saw only as a tombstone.
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/a", Obj: again})
	if got := p.count(bridge, "", t0.Add(25*time.Minute)); got != 0 {
		t.Errorf("count after a was deleted %d, want 0", got)
	}
	if len(p.of) != 1 || len(p.byIntegration) != 1 {
		t.Errorf("tracking %d installations of %d integrations, want only c", len(p.of), len(p.byIntegration))
	}
}
