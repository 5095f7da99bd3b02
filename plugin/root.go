// Package plugin implements `kubectl kommo`: status, refresh, pause, resume, consent-url and
// check for kommo-operator's objects. It talks to the cluster with kubectl's flags
// (k8s.io/cli-runtime) and only through the public API: the objects' spec, status,
// annotations and conditions, Events, the controller's Lease and the webhook's Deployment.
package plugin

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// options are shared by every command.
type options struct {
	genericiooptions.IOStreams
	flags *genericclioptions.ConfigFlags
	// now is the clock; tests set it.
	now func() time.Time
}

// NewCommand returns the root command of the plugin.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newRootCommand(&options{IOStreams: streams, flags: genericclioptions.NewConfigFlags(true), now: time.Now})
}

func newRootCommand(o *options) *cobra.Command {
	streams := o.IOStreams
	root := &cobra.Command{
		Use:   "kubectl-kommo",
		Short: "Inspect and operate kommo-operator's KommoInstallations and KommoIntegrations",
		Long: `Inspect and operate kommo-operator's KommoInstallations and KommoIntegrations.

Installed on the PATH as kubectl-kommo, it runs as "kubectl kommo" and takes kubectl's
connection flags (--kubeconfig, --context, -n, ...).`,
		SilenceUsage: true,
		Annotations:  map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl kommo"},
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newStatusCommand(o),
		newRefreshCommand(o),
		newPauseCommand(o, true),
		newPauseCommand(o, false),
		newConsentURLCommand(o),
		newCheckCommand(o),
	)
	return root
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kommov1.AddToScheme(s))
	return s
}

// client returns an uncached client and the namespace of the flags (-n, else the context's).
func (o *options) client() (client.Client, string, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	return c, ns, nil
}
