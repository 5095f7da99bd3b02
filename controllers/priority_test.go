package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

func TestRoutineRequeuesWaitBehindNewWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  reconcile.Result
		err  error
		want *int
	}{
		{"a planned refresh is routine", reconcile.Result{RequeueAfter: 16 * time.Hour}, nil, ptr.To(handler.LowPriority)},
		{"an hourly sync is routine", reconcile.Result{RequeueAfter: time.Hour}, nil, ptr.To(handler.LowPriority)},
		{"a cache that is behind is work in progress", reconcile.Result{RequeueAfter: staleCacheRetry}, nil, nil},
		{"done keeps its priority", reconcile.Result{}, nil, nil},
		{"an error keeps its priority", reconcile.Result{}, context.DeadlineExceeded, nil},
		{"a priority set by the reconciler stands", reconcile.Result{RequeueAfter: time.Hour, Priority: ptr.To(5)}, nil, ptr.To(5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := routineRequeues{reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
				return tc.res, tc.err
			})}
			got, err := r.Reconcile(context.Background(), reconcile.Request{})
			if err != tc.err {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got.RequeueAfter != tc.res.RequeueAfter {
				t.Errorf("RequeueAfter %s, want %s", got.RequeueAfter, tc.res.RequeueAfter)
			}
			if ptr.Deref(got.Priority, -1) != ptr.Deref(tc.want, -1) || (got.Priority == nil) != (tc.want == nil) {
				t.Errorf("priority %v, want %v", ptr.Deref(got.Priority, -1), ptr.Deref(tc.want, -1))
			}
		})
	}
}

// An integration change enqueues its installations at low priority; a new install queued
// at the same time is served first, and one already queued keeps its priority.
func TestIntegrationChangesQueueBehindInstalls(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
	}
	installs := []reconcile.Request{req("a"), req("b"), req("c")}
	h := enqueueLowPriority(func(context.Context, client.Object) []reconcile.Request { return installs })
	q.Add(req("b")) // a reinstall, queued before the integration changed
	integration := &kommov1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "i", ResourceVersion: "2"}}
	h.Update(context.Background(), event.UpdateEvent{ObjectOld: integration, ObjectNew: integration}, q)
	q.Add(req("new")) // a new install, after it

	got := map[string]int{}
	var order []string
	for range 4 {
		item, priority, shutdown := q.GetWithPriority()
		if shutdown {
			t.Fatal("queue shut down")
		}
		got[item.Name] = priority
		order = append(order, item.Name)
		q.Done(item)
	}
	want := map[string]int{"a": handler.LowPriority, "b": 0, "c": handler.LowPriority, "new": 0}
	for name, p := range want {
		if got[name] != p {
			t.Errorf("%s came at priority %d, want %d (order %v)", name, got[name], p, order)
		}
	}
	if first := order[0] + order[1]; first != "bnew" && first != "newb" {
		t.Errorf("served in order %v, want the installs b and new before the integration's a and c", order)
	}
}

// Only a pass with a code to process makes an install's Kommo calls; every other pass's
// calls are routine.
func TestInstallingPasses(t *testing.T) {
	received := metav1.NewMicroTime(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	earlier := metav1.NewMicroTime(received.Add(-time.Hour))
	auth := &kommov1.Authorization{ReceivedAt: received}
	for _, tc := range []struct {
		name string
		spec kommov1.KommoInstallationSpec
		st   kommov1.KommoInstallationStatus
		want bool
	}{
		{"no install received", kommov1.KommoInstallationSpec{}, kommov1.KommoInstallationStatus{}, false},
		{"a new install", kommov1.KommoInstallationSpec{Authorization: auth}, kommov1.KommoInstallationStatus{}, true},
		{"a reinstall", kommov1.KommoInstallationSpec{Authorization: auth},
			kommov1.KommoInstallationStatus{LastAttempt: &kommov1.Outcome{ReceivedAt: earlier, Result: kommov1.OutcomeSucceeded}}, true},
		{"the install processed", kommov1.KommoInstallationSpec{Authorization: auth},
			kommov1.KommoInstallationStatus{LastAttempt: &kommov1.Outcome{ReceivedAt: received, Result: kommov1.OutcomeSucceeded}}, false},
		{"the install failed", kommov1.KommoInstallationSpec{Authorization: auth},
			kommov1.KommoInstallationStatus{LastAttempt: &kommov1.Outcome{ReceivedAt: received, Result: kommov1.OutcomeFailed}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := &kommov1.KommoInstallation{Spec: tc.spec, Status: tc.st}
			if got := installing(inst); got != tc.want {
				t.Errorf("installing = %v, want %v", got, tc.want)
			}
		})
	}
}
