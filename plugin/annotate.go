package plugin

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// annotate sets (value non-nil) or removes (nil) one annotation with a merge patch.
func annotate(cmd *cobra.Command, o *options, obj client.Object, name, key string, value *string) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	obj.SetNamespace(ns)
	obj.SetName(name)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
	if err != nil {
		return err
	}
	if err := c.Patch(cmd.Context(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	return nil
}

func newRefreshCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh INSTALLATION",
		Short: "Ask the controller to refresh the installation's tokens now (annotation " + kommov1.AnnotationRefreshRequestedAt + ")",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := o.now().UTC().Format(time.RFC3339)
			if err := annotate(cmd, o, &kommov1.KommoInstallation{}, args[0], kommov1.AnnotationRefreshRequestedAt, &now); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "kommoinstallation/%s: refresh requested at %s\n", args[0], now)
			return nil
		},
	}
}

func newPauseCommand(o *options, pause bool) *cobra.Command {
	var integration bool
	use, short, done := "resume", "Let the controller act on the object again (removes "+kommov1.AnnotationPaused+")", "resumed"
	if pause {
		use, short, done = "pause", "Stop the controller from acting on the object (sets "+kommov1.AnnotationPaused+"=true)", "paused"
	}
	cmd := &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Long:  short + ".\n\nNAME is a KommoInstallation; with --integration a KommoIntegration, which " + use + "s all its installations.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var obj client.Object = &kommov1.KommoInstallation{}
			kind := "kommoinstallation"
			if integration {
				obj, kind = &kommov1.KommoIntegration{}, "kommointegration"
			}
			var value *string
			if pause {
				t := "true"
				value = &t
			}
			if err := annotate(cmd, o, obj, args[0], kommov1.AnnotationPaused, value); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s/%s %s\n", kind, args[0], done)
			return nil
		},
	}
	cmd.Flags().BoolVar(&integration, "integration", false, "NAME is a KommoIntegration.")
	return cmd
}
