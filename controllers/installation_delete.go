package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// maxDisconnectAttempts bounds the retries of the disconnect on deletion: after that the
// finalizer goes anyway, with a Warning, rather than blocking the deletion forever.
const maxDisconnectAttempts = 5

// reconcileDelete disconnects the chat channel, if one is connected, and releases the
// finalizer; the token Secret then goes by garbage collection (owner reference). What
// cannot be done (the KommoIntegration or the channel secret is gone) is said in a
// Warning event, and the deletion ends anyway.
func (r *InstallationReconciler) reconcileDelete(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	if !controllerutil.ContainsFinalizer(inst, kommov1.FinalizerChannel) {
		return nil
	}
	if st.ConnectedChannel == nil || st.AmojoID == "" {
		controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
		return nil
	}
	if ok, err := r.liveCheck(ctx, s); !ok || err != nil {
		return err // gone already, or the cache is behind: decide on fresh data
	}
	channel := st.ConnectedChannel
	giveUp := func(reason string) error {
		r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventDisconnectFailed, "Disconnect",
			"Channel %s left connected in %s: %s; disconnect it in Kommo", channel.ChannelID, s.host(), reason)
		logf.FromContext(ctx).Info("Gave up disconnecting the channel", "reason", reason)
		controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
		return nil
	}

	integration := &kommov1.KommoIntegration{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: inst.Namespace, Name: inst.Spec.IntegrationRef.Name}, integration); err != nil {
		if apierrors.IsNotFound(err) {
			return giveUp("the KommoIntegration is gone, so the disconnect cannot be signed")
		}
		return err
	}
	s.integration = integration
	ref := channel.SecretRef
	if ref == nil && integration.Spec.Chat != nil {
		ref = &integration.Spec.Chat.SecretRef
	}
	if ref == nil {
		return giveUp("the KommoIntegration has no chat channel any more")
	}
	secret, err := secretValue(ctx, s.secrets, inst.Namespace, *ref)
	if err != nil {
		var missing *errSecretMissing
		if errors.As(err, &missing) {
			return giveUp(missing.Error())
		}
		return err
	}
	if b := s.failing(concernDisconnect); b != nil && b.FailedAttempts >= maxDisconnectAttempts {
		return giveUp(fmt.Sprintf("%d attempts failed, the last: %s", b.FailedAttempts, b.Message))
	}
	if r.waiting(s, concernDisconnect) {
		return nil
	}
	err = r.Kommo.Disconnect(ctx, s.host(), kommo.Channel{ID: channel.ChannelID, Secret: secret}, st.AmojoID)
	if err != nil && kommo.KindOf(err) != kommo.KindNotFound {
		reason, _ := chatReasonOf(err)
		r.failed(ctx, s, concernDisconnect, reason, err)
		return nil
	}
	r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, eventDisconnected, "Disconnect",
		"Disconnected channel %s from %s", channel.ChannelID, s.host())
	logf.FromContext(ctx).Info("Disconnected channel", "channel", channel.ChannelID)
	controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
	return nil
}
