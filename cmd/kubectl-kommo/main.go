// Command kubectl-kommo is the kubectl plugin of kommo-operator: on the PATH it runs as
// `kubectl kommo`. The commands are in package plugin.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kommo-operator/kommo-operator/plugin"
)

func main() {
	cmd := plugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
