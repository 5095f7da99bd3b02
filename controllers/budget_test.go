package controllers_test

import (
	"fmt"
	"slices"
	"testing"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

// With refreshes queued for Kommo's budget, a new install's calls go first: its exchange
// waits behind at most a refresh or two, not behind every queued one. The assertion is
// relative to what was still queued when the install arrived.
func TestInstallsGoFirstForKommosBudget(t *testing.T) {
	const refreshes = 8
	h := newHarness(t, harnessOptions{noChat: true, kommoQPS: 4, workers: refreshes + 2})
	names := make([]string, refreshes)
	for i := range names {
		names[i] = h.install(fmt.Sprintf("upkeep%d.kommo.com", i))
	}
	for _, name := range names {
		h.waitReady(name)
	}
	since := len(h.sim.Calls())
	refreshCalls := func() []kommotest.Call {
		return slices.DeleteFunc(slices.Clone(h.sim.Calls()[since:]), func(c kommotest.Call) bool { return c.Op != "refresh" })
	}
	for _, name := range names {
		h.mergePatch(h.get(name), map[string]any{"metadata": map[string]any{"annotations": map[string]string{
			kommov1.AnnotationRefreshRequestedAt: refreshRequest(),
		}}})
	}
	// At 4 calls/s the first refresh is sent while the others wait for the budget.
	h.eventually("the first refresh", func() (bool, string) {
		n := len(refreshCalls())
		return n > 0, fmt.Sprintf("%d refreshes", n)
	})
	fresh := h.install("fresh.kommo.com")
	// Queued in order, the exchange would come after every refresh not sent yet.
	queued := refreshes - len(refreshCalls())
	if queued < 3 {
		t.Fatalf("only %d refreshes were still queued when the install arrived: the test proves nothing", queued)
	}
	h.waitReady(fresh)
	h.eventually("every refresh", func() (bool, string) {
		n := len(refreshCalls())
		return n == refreshes, fmt.Sprintf("%d of %d refreshes", n, refreshes)
	})

	after := 0
	exchanged := false
	for _, c := range h.sim.Calls()[since:] {
		switch {
		case c.Op == "exchange" && c.Host == "fresh.kommo.com":
			exchanged = true
		case c.Op == "refresh" && exchanged:
			after++
		}
	}
	if !exchanged {
		t.Fatal("the fresh install's exchange is not among the calls")
	}
	// Installs first: behind at most the refresh holding the turn and one sent while the
	// install's pass read what it needs.
	if after < queued-2 {
		t.Errorf("the fresh install was exchanged before %d of the %d refreshes queued when it arrived, want at least %d", after, queued, queued-2)
	}
}
