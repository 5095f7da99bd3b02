package testenv

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

//go:embed testdata/ready-installation.json
var readyInstallation []byte

// ReadyInstallation is a KommoInstallation as the controller leaves it Ready, with its
// channel connected and one source synced, as read from the API server.
func ReadyInstallation(tb testing.TB) *kommov1.KommoInstallation {
	tb.Helper()
	it := &kommov1.KommoInstallation{}
	if err := json.Unmarshal(readyInstallation, it); err != nil {
		tb.Fatal(err)
	}
	return it
}

// CreateReady creates in namespace ns the installation of account i shaped as tmpl (a
// ReadyInstallation), and then its status.
func CreateReady(ctx context.Context, c client.Client, tmpl *kommov1.KommoInstallation, ns string, i int) (*kommov1.KommoInstallation, error) {
	it := &kommov1.KommoInstallation{Spec: *tmpl.Spec.DeepCopy()}
	it.Spec.AccountDomain = fmt.Sprintf("acme%05d.kommo.com", i)
	it.Name, it.Namespace = it.Spec.IntegrationRef.Name+"."+it.Spec.AccountDomain, ns
	it.Finalizers, it.Labels = slices.Clone(tmpl.Finalizers), maps.Clone(tmpl.Labels)
	it.Labels[kommov1.LabelAccountID] = fmt.Sprint(30000000 + i)
	if err := c.Create(ctx, it); err != nil {
		return nil, err
	}
	it.Status = *tmpl.Status.DeepCopy()
	it.Status.AccountDomain = it.Spec.AccountDomain
	return it, c.Status().Update(ctx, it)
}
