package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// freshInstalls is how many new installs the due-refresh phase sends while the backlog
// of refreshes drains, one every freshInterval.
const freshInstalls = 100

// freshInterval paces the fresh installs: 5 a second, or with Kommo's budget set, at
// most half of it (an install makes 3 calls) so that they alone never exceed it.
func (b *bench) freshInterval() time.Duration {
	d := 200 * time.Millisecond
	if b.c.kommoQPS > 0 {
		d = max(d, time.Duration(3/(b.c.kommoQPS/2)*float64(time.Second)))
	}
	return d
}

// dueRefreshes makes every installation's refresh due at once, as after a day without a
// controller: status.refreshTime moves to now and a change to the KommoIntegration wakes
// every installation (at low priority, as the controller queues integration fan-out).
// While that backlog drains it sends fresh installs of new accounts and prints how long
// each took to be Ready (redirect sent → Ready seen on a watch), then how evenly the
// refreshes ran and how evenly the next ones are planned.
func (b *bench) dueRefreshes(ctx context.Context, n int) error {
	accounts, codes, err := b.newAccounts(ctx, "fresh", freshInstalls)
	if err != nil {
		return err
	}
	list := &kommov1.KommoInstallationList{}
	if err := b.admin.List(ctx, list, client.InNamespace(b.s.Namespace)); err != nil {
		return err
	}
	start := time.Now()
	if err := b.planRefreshes(ctx, list.Items, metav1.NewTime(start.Truncate(time.Second))); err != nil {
		return err
	}
	if err := b.awaitDigested(ctx, &list.Items[len(list.Items)-1], start); err != nil {
		return err
	}
	before, err := b.counters(ctx)
	if err != nil {
		return err
	}

	names := map[string]int{}
	for i, a := range accounts {
		names[b.s.InstallationName(a)] = i
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	readyAt := make([]atomic.Int64, freshInstalls) // unix nanoseconds, 0 until Ready
	var readyCount atomic.Int64
	// Watch from now: from the list's version the watch would first replay the 10,000
	// status writes of planRefreshes, and see the fresh installs Ready seconds late.
	now := &kommov1.KommoInstallationList{}
	if err := b.admin.List(ctx, now, client.InNamespace(b.s.Namespace), client.Limit(1)); err != nil {
		return err
	}
	go b.watchReady(watchCtx, now.ResourceVersion, func(inst *kommov1.KommoInstallation) {
		if i, fresh := names[inst.Name]; fresh && readyNow(inst) && readyAt[i].CompareAndSwap(0, time.Now().UnixNano()) {
			readyCount.Add(1)
		}
	})

	if err := b.touchIntegration(ctx); err != nil {
		return err
	}
	sent := make([]time.Time, freshInstalls)
	answered, statuses := make([]time.Duration, freshInstalls), make([]int, freshInstalls)
	errs := make(chan error, freshInstalls)
	tick := time.NewTicker(b.freshInterval()) // the pace of the load, not synchronisation
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range accounts {
		<-tick.C
		sent[i] = time.Now()
		wg.Go(func() {
			status, err := b.redirect(ctx, accounts[i], codes[i])
			if err != nil {
				errs <- err
			}
			answered[i], statuses[i] = time.Since(sent[i]), status
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if err := poll(ctx, "fresh installs Ready and every due refresh made", func(ctx context.Context) (bool, string, error) {
		calls, err := b.simCalls(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		refreshed := int(calls.minus(before.calls)["refresh"]) + 1 // and awaitDigested's
		return int(readyCount.Load()) == freshInstalls && refreshed >= n,
			fmt.Sprintf("%d of %d fresh Ready, %d of %d refreshed", readyCount.Load(), freshInstalls, refreshed, n), nil
	}); err != nil {
		return err
	}
	lat := make([]time.Duration, freshInstalls)
	slowest := 0
	for i := range lat {
		lat[i] = time.Unix(0, readyAt[i].Load()).Sub(sent[i])
		if lat[i] > lat[slowest] {
			slowest = i
		}
	}
	slowestLine := fmt.Sprintf("  the slowest, %s: answered %d in %s, Ready %s after it was sent\n",
		b.s.InstallationName(accounts[slowest]), statuses[slowest], answered[slowest].Round(time.Millisecond), lat[slowest].Round(time.Millisecond))
	slices.Sort(lat)
	after, err := b.counters(ctx)
	if err != nil {
		return err
	}
	calls := after.calls.calls[before.calls.total:]
	var refreshes []time.Time
	for _, c := range calls {
		if c.Op == "refresh" {
			refreshes = append(refreshes, c.Time)
		}
	}
	// While refreshes were still queued: from the first to the last of them.
	var backlog []kommotest.Call
	first, last := slices.MinFunc(refreshes, time.Time.Compare), slices.MaxFunc(refreshes, time.Time.Compare)
	for _, c := range calls {
		if !c.Time.Before(first) && !c.Time.After(last) {
			backlog = append(backlog, c)
		}
	}
	fmt.Printf("%d refreshes due at once: %d fresh installs sent during the backlog, Ready p50 %s, p99 %s, max %s\n",
		n, freshInstalls, pct(lat, 0.50).Round(time.Millisecond), pct(lat, 0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Print(slowestLine)
	fmt.Printf("  the backlog's refreshes: %s\n", spread(refreshes))
	fmt.Printf("  Kommo rate while refreshes were queued: %s\n", rateOf(backlog, b.c.kommoQPS))
	d := after.controller.minus(before.controller)
	passes := n + freshInstalls // the fresh installs' requests are in it too
	fmt.Printf("  controller API requests per refresh or fresh install: %.2f (%s)\n", d.requests/float64(passes), perInstall(d.verbs, passes))

	if err := b.admin.List(ctx, list, client.InNamespace(b.s.Namespace)); err != nil {
		return err
	}
	var next []time.Time
	for _, inst := range list.Items {
		if _, fresh := names[inst.Name]; !fresh && inst.Status.RefreshTime != nil {
			next = append(next, inst.Status.RefreshTime.Time)
		}
	}
	fmt.Printf("  the next refreshes as planned: %s\n", spread(next))
	return b.waitSteady(ctx, 0)
}

// watchReady passes every installation added or changed after resourceVersion to seen,
// watching again from the last one seen when the API server ends a watch, until ctx ends.
func (b *bench) watchReady(ctx context.Context, resourceVersion string, seen func(*kommov1.KommoInstallation)) {
	for ctx.Err() == nil {
		w, err := b.watcher.Watch(ctx, &kommov1.KommoInstallationList{}, client.InNamespace(b.s.Namespace),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: resourceVersion, AllowWatchBookmarks: true}})
		if err != nil {
			fmt.Printf("  watching installations: %v\n", err)
			return
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				if err := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					fmt.Printf("  watching installations: %v\n", err)
					return
				}
				continue // e.g. the stream broke: watch again from the last version seen
			}
			inst, ok := ev.Object.(*kommov1.KommoInstallation)
			if !ok {
				continue
			}
			resourceVersion = inst.ResourceVersion
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				seen(inst)
			}
		}
		w.Stop()
	}
}

// awaitDigested waits until the controller has seen every write planRefreshes made: it
// annotates the last installation written and waits for that installation's refresh.
// Watch events arrive in order, so the controller's cache then holds every planned time;
// without this the first fresh install queued behind thousands of status events that a
// real backlog of due refreshes never writes.
func (b *bench) awaitDigested(ctx context.Context, last *kommov1.KommoInstallation, since time.Time) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		"scale.kommo-operator.io/planned": since.UTC().Format(time.RFC3339Nano),
	}}})
	if err := b.admin.Patch(ctx, last.DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	return poll(ctx, "the controller to see the planned refreshes", func(ctx context.Context) (bool, string, error) {
		inst := &kommov1.KommoInstallation{}
		if err := b.admin.Get(ctx, client.ObjectKeyFromObject(last), inst); err != nil {
			return false, err.Error(), nil
		}
		done := inst.Status.LastRefreshTime != nil && !inst.Status.LastRefreshTime.Time.Before(since.Truncate(time.Second))
		return done, "not refreshed yet", nil
	})
}

// planRefreshes sets status.refreshTime of every installation to at, as an administrator.
func (b *bench) planRefreshes(ctx context.Context, items []kommov1.KommoInstallation, at metav1.Time) error {
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"refreshTime": at}})
	return forEach(len(items), b.c.clients, func(i int) error {
		if err := b.admin.Status().Patch(ctx, &items[i], client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("planning the refresh of %s: %w", items[i].Name, err)
		}
		return nil
	})
}

// spread describes times: how many, over how long, and the most in any 60 seconds
// against the mean per 60 seconds of that span.
func spread(times []time.Time) string {
	if len(times) < 2 {
		return fmt.Sprintf("%d", len(times))
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	busiest, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= time.Minute {
			j++
		}
		busiest = max(busiest, i-j+1)
	}
	span := times[len(times)-1].Sub(times[0])
	mean := float64(len(times)) / max(span.Minutes(), 1)
	return fmt.Sprintf("%d over %s, busiest minute %d, %.2f× the mean minute (%.0f)",
		len(times), span.Round(time.Second), busiest, float64(busiest)/mean, mean)
}
