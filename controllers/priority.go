package controllers

import (
	"context"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// The installation controller runs on controller-runtime's priority queue. New installs
// and reinstalls (a create or a spec change of the installation) come at the default
// priority; routine upkeep waits behind them at handler.LowPriority: planned refreshes,
// hourly source syncs and persisted backoffs (routineRequeues), every installation of an
// integration that changed (enqueueLowPriority), and the initial list after a restart
// (controller-runtime's own handlers already do that).

// routineRequeue is the shortest requeue treated as routine upkeep. Shorter ones are the
// next step of work in progress (a cache that is behind, a brief wait) and keep the
// priority the work came with.
const routineRequeue = time.Minute

// routineRequeues lowers the priority of a pass's requeue when it is routine upkeep.
// Without it an installation would keep the default priority of its first install for
// every refresh ever after, and a new install would queue behind all of them.
type routineRequeues struct {
	reconcile.Reconciler
}

func (r routineRequeues) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := r.Reconciler.Reconcile(ctx, req)
	if err == nil && res.Priority == nil && res.RequeueAfter >= routineRequeue {
		res.Priority = ptr.To(handler.LowPriority)
	}
	return res, err
}

// enqueueLowPriority enqueues the requests toRequests maps an event's object to at low
// priority: one change to a KommoIntegration reaches every installation of it, and new
// installs go first. An installation already queued keeps its higher priority.
func enqueueLowPriority(toRequests handler.MapFunc) handler.EventHandler {
	add := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		reqs := toRequests(ctx, obj)
		if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, reqs...)
			return
		}
		for _, req := range reqs {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		// An update never moves an object to another namespace or name: the new one maps to
		// the same installations.
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}

// installing reports whether a pass over inst serves an install or reinstall whose code
// has not been processed; that pass also makes the install's account lookup and connect.
// Every other pass is upkeep, and its Kommo calls are routine (kommo.Routine): while
// Kommo's budget is short, an install's calls go first, however many workers wait for it
// with refreshes.
func installing(inst *kommov1.KommoInstallation) bool {
	auth := inst.Spec.Authorization
	return auth != nil && !attemptDone(&inst.Status, auth)
}
