package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"

	"github.com/kommo-operator/kommo-operator/kommo"
)

// Options configure the reconcilers.
type Options struct {
	// Kommo sends every request to Kommo, through one rate limiter.
	Kommo *kommo.Client
	// MaxConcurrentReconciles is how many installations are reconciled at once.
	MaxConcurrentReconciles int
	// BackoffScale multiplies the persisted backoff after Kommo failures; 0 means 1.
	// Tests shrink it; Kommo's own retry_after is honoured whatever the scale.
	BackoffScale float64
	// SingleUse runs the exchanges and refreshes; the process drains it before exiting.
	// Nil means one of its own, which nothing drains.
	SingleUse *SingleUse
	// Now is the installation reconciler's clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

// CacheOptions is the manager cache the reconcilers are written for: only the Secrets
// labelled as the operator's are cached, as metadata (the reconcilers read Secrets only
// through metadata informers; every Secret's data is read live, and no Secret list ever
// covers the whole cluster), and managedFields are dropped and repeated strings shared
// (internStrings) to save memory.
// watchNamespace, when set, limits the cache to one namespace.
func CacheOptions(watchNamespace string) cache.Options {
	opts := cache.Options{
		DefaultTransform: internStrings,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{kommov1.LabelManagedBy: kommov1.ManagedByValue})},
		},
	}
	if watchNamespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}
	return opts
}

// Setup registers both reconcilers and the per-installation metrics with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.MaxConcurrentReconciles < 1 {
		o.MaxConcurrentReconciles = 1
	}
	if err := (&IntegrationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the KommoIntegration controller: %w", err)
	}
	if o.SingleUse == nil {
		o.SingleUse = &SingleUse{}
	}
	installations := &InstallationReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Kommo:        o.Kommo,
		Recorder:     mgr.GetEventRecorder("kommo-operator-controller"),
		BackoffScale: o.BackoffScale,
		SingleUse:    o.SingleUse,
		Replica:      replicaName(),
		Now:          o.Now,
	}
	if err := installations.SetupWithManager(mgr, o.MaxConcurrentReconciles); err != nil {
		return fmt.Errorf("setting up the KommoInstallation controller: %w", err)
	}
	// Before the manager starts, this only creates the informer: nothing waits on the context.
	informer, err := mgr.GetCache().GetInformer(context.Background(), &kommov1.KommoInstallation{})
	if err != nil {
		return fmt.Errorf("getting the KommoInstallation informer: %w", err)
	}
	if err := feedGauges(informer); err != nil {
		return fmt.Errorf("feeding the per-installation metrics: %w", err)
	}
	return nil
}

// replicaName names this process: the pod's name (the hostname) and a random suffix, so a
// restarted pod is another replica for the refresh fence.
func replicaName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
