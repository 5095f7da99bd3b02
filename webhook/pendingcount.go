package webhook

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// pendingCounts counts, per integration, the installations whose latest install awaits
// the controller (awaitsProcessing) and was received less than the code's lifetime ago.
// The KommoInstallation informer feeds it, so the pending cap costs a redirect the same
// whatever the number of installations pending: listing them from the cache's index
// copied every one of them on every redirect, the costliest work of a migration's burst.
type pendingCounts struct {
	lifetime time.Duration

	mu sync.Mutex
	// byIntegration: integration → installation name → receivedAt of its pending install.
	byIntegration map[client.ObjectKey]map[string]time.Time
	// of is the integration each tracked installation is counted under.
	of map[types.NamespacedName]client.ObjectKey
	// oldest is the earliest receivedAt tracked: nothing expires before oldest+lifetime,
	// so expired entries are swept only when one has.
	oldest time.Time
}

func newPendingCounts(lifetime time.Duration) *pendingCounts {
	return &pendingCounts{
		lifetime:      lifetime,
		byIntegration: make(map[client.ObjectKey]map[string]time.Time),
		of:            make(map[types.NamespacedName]client.ObjectKey),
	}
}

// handler keeps the counts in step with the informer.
func (p *pendingCounts) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.observe(obj) },
		UpdateFunc: func(_, obj any) { p.observe(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if it, ok := obj.(*kommov1.KommoInstallation); ok {
				p.mu.Lock()
				defer p.mu.Unlock()
				p.forget(client.ObjectKeyFromObject(it))
			}
		},
	}
}

func (p *pendingCounts) observe(obj any) {
	it, ok := obj.(*kommov1.KommoInstallation)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(it)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget(key)
	if !awaitsProcessing(it) {
		return
	}
	ikey := client.ObjectKey{Namespace: it.Namespace, Name: it.Spec.IntegrationRef.Name}
	set := p.byIntegration[ikey]
	if set == nil {
		set = make(map[string]time.Time)
		p.byIntegration[ikey] = set
	}
	at := it.Spec.Authorization.ReceivedAt.Time
	set[it.Name] = at
	p.of[key] = ikey
	if p.oldest.IsZero() || at.Before(p.oldest) {
		p.oldest = at
	}
}

// forget stops counting the installation key. Callers hold mu.
func (p *pendingCounts) forget(key types.NamespacedName) {
	ikey, ok := p.of[key]
	if !ok {
		return
	}
	delete(p.of, key)
	if set := p.byIntegration[ikey]; set != nil {
		delete(set, key.Name)
		if len(set) == 0 {
			delete(p.byIntegration, ikey)
		}
	}
}

// count is the number of installs of integration pending at now, not counting the
// installation called except.
func (p *pendingCounts) count(integration client.ObjectKey, except string, now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.oldest.IsZero() && now.Sub(p.oldest) >= p.lifetime {
		p.sweep(now)
	}
	set := p.byIntegration[integration]
	n := len(set)
	if _, ok := set[except]; ok {
		n--
	}
	return n
}

// sweep drops the installs whose code expired and finds the oldest left. Callers hold mu.
func (p *pendingCounts) sweep(now time.Time) {
	p.oldest = time.Time{}
	for ikey, set := range p.byIntegration {
		for name, at := range set {
			if now.Sub(at) >= p.lifetime {
				p.forget(types.NamespacedName{Namespace: ikey.Namespace, Name: name})
				continue
			}
			if p.oldest.IsZero() || at.Before(p.oldest) {
				p.oldest = at
			}
		}
	}
}
