// Command kommo-operator is the one binary of the operator. Its subcommands run the two
// halves as separate Deployments:
//
//	kommo-operator controller   reconciles KommoIntegrations and KommoInstallations
//	kommo-operator webhook      records Kommo's redirects and revoke hooks; holds no secrets
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

const usage = `Usage: kommo-operator <command> [flags]

Commands:
  controller   reconcile KommoIntegrations and KommoInstallations
  webhook      serve Kommo's Redirect URI and "access revoked" hook

Run 'kommo-operator <command> -h' for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	err := applyMemoryLimit(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kommo-operator: %v\n", err)
		os.Exit(2)
	}
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "controller":
		err = runController(args)
	case "webhook":
		err = runWebhook(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "kommo-operator: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kommo-operator %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// restConfig finds the cluster: --kubeconfig, then $KUBECONFIG, in-cluster config and
// ~/.kube/config, as controller-runtime does.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, err
		}
		// As ctrl.GetConfig does: no client-side throttling of our own API calls
		// (client-go's default of 5/s otherwise delays every write).
		cfg.QPS, cfg.Burst = -1, -1
		return cfg, nil
	}
	return ctrl.GetConfig()
}

// newScheme knows the built-in kinds and the operator's.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kommov1.AddToScheme(s))
	return s
}
