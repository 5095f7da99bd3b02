package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

func newConsentURLCommand(o *options) *cobra.Command {
	var (
		ttl  time.Duration
		mode string
		host string
	)
	cmd := &cobra.Command{
		Use:   "consent-url INTEGRATION",
		Short: "Print Kommo's consent link for the integration, with a state signed by its stateSecretRef key",
		Long: `Print Kommo's consent link for the integration (the button-on-site flow), with a state
signed by the key spec.stateSecretRef names, so that the controller accepts the install.
Reading that key needs get access to the Secret.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return errors.New("--ttl must be positive")
			}
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			integ := &kommov1.KommoIntegration{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, integ); err != nil {
				return fmt.Errorf("getting KommoIntegration %s/%s: %w", ns, args[0], err)
			}
			ref := integ.Spec.StateSecretRef
			if ref == nil {
				return fmt.Errorf("KommoIntegration %s/%s has no spec.stateSecretRef: installs need no state, use Kommo's own install button", ns, args[0])
			}
			secret := &corev1.Secret{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: ref.Name}, secret); err != nil {
				return fmt.Errorf("reading the state key (Secret %s/%s): %w", ns, ref.Name, err)
			}
			key := secret.Data[ref.Key]
			if len(key) == 0 {
				return fmt.Errorf("Secret %s/%s has no key %q", ns, ref.Name, ref.Key)
			}
			nonce := make([]byte, 16)
			if _, err := rand.Read(nonce); err != nil {
				return err
			}
			state, err := kommo.MintState(key, o.now().Add(ttl), hex.EncodeToString(nonce))
			if err != nil {
				return err
			}
			q := url.Values{"client_id": {integ.Spec.ClientID}, "state": {state}, "mode": {mode}}
			u := url.URL{Scheme: "https", Host: host, Path: "/oauth", RawQuery: q.Encode()}
			fmt.Fprintln(o.Out, u.String())
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 15*time.Minute, "How long the link's state is accepted.")
	cmd.Flags().StringVar(&mode, "mode", "post_message", "Kommo's mode parameter: post_message or popup.")
	cmd.Flags().StringVar(&host, "consent-host", "www.kommo.com", "Host of Kommo's consent page (www.amocrm.ru for amocrm.ru accounts).")
	return cmd
}
