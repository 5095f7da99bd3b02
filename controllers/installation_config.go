package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// dependencyPoll is how often a missing Secret is looked for again: Secrets the operator
// does not own are not watched.
const dependencyPoll = time.Minute

// loadIntegration finds the KommoIntegration and checks the account domain against its
// accountDomains before anything is sent to that host. Without them nothing can be done
// (ok false, Ready says why). Its Secrets are read only when a concern needs them.
func (r *InstallationReconciler) loadIntegration(ctx context.Context, s *installationScope) (bool, error) {
	inst := s.inst
	integration := &kommov1.KommoIntegration{}
	key := types.NamespacedName{Namespace: inst.Namespace, Name: inst.Spec.IntegrationRef.Name}
	if err := r.Get(ctx, key, integration); err != nil {
		if apierrors.IsNotFound(err) {
			s.notReady(kommov1.ReasonIntegrationNotFound, fmt.Sprintf("KommoIntegration %s not found", key.Name))
			return false, nil
		}
		return false, err
	}
	s.integration = integration
	if inst.Labels[kommov1.LabelIntegration] != integration.Name {
		// Installations declared by hand may lack it; the integration watch selects on it.
		setLabel(inst, kommov1.LabelIntegration, integration.Name)
	}
	if integration.Annotations[kommov1.AnnotationPaused] == "true" {
		s.notReady(kommov1.ReasonPaused, "The KommoIntegration has the "+kommov1.AnnotationPaused+" annotation")
		return false, nil
	}
	domains := effectiveDomains(integration)
	if !kommo.MatchesDomain(inst.Spec.AccountDomain, domains) || !kommo.MatchesDomain(s.host(), domains) {
		s.notReady(kommov1.ReasonForbiddenDomain, fmt.Sprintf("Account domain %s is not under the integration's accountDomains", s.host()))
		return false, nil
	}
	s.chat = effectiveChat(integration)
	return true, nil
}

// credentials reads the client secret live, once per pass, right before a call needs
// it. A missing Secret makes Ready False and is looked for again; ok is false then.
func (r *InstallationReconciler) credentials(ctx context.Context, s *installationScope) (kommo.App, bool, error) {
	if s.app != nil {
		return *s.app, true, nil
	}
	spec := s.integration.Spec
	secret, err := secretValue(ctx, s.secrets, s.inst.Namespace, spec.ClientSecretRef)
	if err != nil {
		var missing *errSecretMissing
		if !errors.As(err, &missing) {
			return kommo.App{}, false, err
		}
		s.notReady(kommov1.ReasonIntegrationNotReady, missing.Error())
		s.requeue(dependencyPoll)
		return kommo.App{}, false, nil
	}
	s.app = &kommo.App{ClientID: spec.ClientID, ClientSecret: secret, RedirectURI: spec.RedirectURI}
	return *s.app, true, nil
}

// effectiveDomains are the integration's account domains, defaults applied.
func effectiveDomains(integration *kommov1.KommoIntegration) []string {
	if len(integration.Spec.AccountDomains) > 0 {
		return integration.Spec.AccountDomains
	}
	return kommo.DefaultAccountDomains
}

// effectiveChat is the integration's chat configuration, defaults applied.
func effectiveChat(integration *kommov1.KommoIntegration) *kommov1.ChatStatus {
	chat := integration.Spec.Chat
	if chat == nil {
		return nil
	}
	out := &kommov1.ChatStatus{ChannelID: strings.ToLower(chat.ChannelID), Title: chat.Title, HookAPIVersion: chat.HookAPIVersion}
	if out.Title == "" {
		out.Title = integration.Name
	}
	if out.HookAPIVersion == "" {
		out.HookAPIVersion = kommo.DefaultHookAPIVersion
	}
	return out
}

func setLabel(obj client.Object, key, value string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[key] = value
	obj.SetLabels(labels)
}
