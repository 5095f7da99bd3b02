package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// leaderElectionID is the controller's Lease name (cmd_controller.go's LeaderElectionID).
const leaderElectionID = "kommo-operator-controller.kommo-operator.io"

// checkResult is one line of `check`.
type checkResult struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// errChecksFailed makes the command exit non-zero after printing its results.
var errChecksFailed = errors.New("some checks failed")

func newCheckCommand(o *options) *cobra.Command {
	var (
		output, operatorNS, lease, webhookDeployment string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that the operator works: CRDs served, controller leader present and fresh, webhook ready",
		Long: `Check that the operator works: the CRDs are served, the controller's leader Lease is held
and renewed within its duration, and the webhook Deployment has all its replicas ready.
Exits 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := o.client()
			if err != nil {
				return err
			}
			results := []checkResult{o.checkCRDs()}
			results = append(results, checkLease(cmd.Context(), c, client.ObjectKey{Namespace: operatorNS, Name: lease}, o.now()))
			results = append(results, checkWebhook(cmd.Context(), c, client.ObjectKey{Namespace: operatorNS, Name: webhookDeployment}))
			if ok, err := printData(o.Out, output, results); ok {
				if err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
				for _, r := range results {
					mark := "OK"
					if !r.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", mark, r.Check, r.Detail)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if slices.ContainsFunc(results, func(r checkResult) bool { return !r.OK }) {
				cmd.SilenceErrors = true
				return errChecksFailed
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&operatorNS, "operator-namespace", "kommo-operator-system", "Namespace the operator runs in.")
	cmd.Flags().StringVar(&lease, "lease", leaderElectionID, "Name of the controller's leader-election Lease.")
	cmd.Flags().StringVar(&webhookDeployment, "webhook-deployment", "kommo-operator-webhook", "Name of the webhook Deployment.")
	return cmd
}

func (o *options) checkCRDs() checkResult {
	r := checkResult{Check: "CRDs served"}
	dc, err := o.flags.ToDiscoveryClient()
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	dc.Invalidate()
	list, err := dc.ServerResourcesForGroupVersion(kommov1.GroupVersion.String())
	if err != nil {
		r.Detail = fmt.Sprintf("%s: %v", kommov1.GroupVersion, err)
		return r
	}
	var missing []string
	for _, want := range []string{"kommointegrations", "kommoinstallations"} {
		if !slices.ContainsFunc(list.APIResources, func(a metav1.APIResource) bool { return a.Name == want }) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		r.Detail = fmt.Sprintf("%s does not serve %v", kommov1.GroupVersion, missing)
		return r
	}
	r.OK, r.Detail = true, kommov1.GroupVersion.String()+": kommointegrations, kommoinstallations"
	return r
}

func checkLease(ctx context.Context, c client.Client, key client.ObjectKey, now time.Time) checkResult {
	r := checkResult{Check: "controller leader"}
	l := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, l); err != nil {
		r.Detail = fmt.Sprintf("Lease %s: %v", key, err)
		return r
	}
	holder := ""
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if holder == "" {
		r.Detail = fmt.Sprintf("Lease %s has no holder: no controller is leading", key)
		return r
	}
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		r.Detail = fmt.Sprintf("Lease %s held by %s was never renewed", key, holder)
		return r
	}
	renewed := l.Spec.RenewTime.Time
	if expires := renewed.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second); !now.Before(expires) {
		r.Detail = fmt.Sprintf("Lease %s held by %s expired: last renewed %s", key, holder, relative(renewed, now))
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s, renewed %s", holder, relative(renewed, now))
	return r
}

func checkWebhook(ctx context.Context, c client.Client, key client.ObjectKey) checkResult {
	r := checkResult{Check: "webhook ready"}
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, key, d); err != nil {
		r.Detail = fmt.Sprintf("Deployment %s: %v", key, err)
		return r
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	r.Detail = fmt.Sprintf("%d/%d replicas ready", st.ReadyReplicas, want)
	switch {
	case want == 0:
		r.Detail = "scaled to zero: installs are lost"
	case st.ObservedGeneration < d.Generation:
		r.Detail = "rollout not observed yet; " + r.Detail
	case st.ReadyReplicas < want || st.AvailableReplicas < want:
	default:
		r.OK = true
	}
	return r
}
