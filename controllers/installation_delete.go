package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// maxDisconnectAttempts bounds the retries of the disconnect on deletion: after that the
// finalizer goes anyway, with a Warning, rather than blocking the deletion forever.
const maxDisconnectAttempts = 5

// reconcileDelete disconnects the chat channel, if one is connected, and releases the
// finalizer; the token Secret then goes by garbage collection (owner reference).
func (r *InstallationReconciler) reconcileDelete(ctx context.Context, s *installationScope) (ctrl.Result, error) {
	inst, st := s.inst, &s.inst.Status
	if !controllerutil.ContainsFinalizer(inst, kommov1.FinalizerChannel) {
		return ctrl.Result{}, nil
	}
	if st.ConnectedChannel == nil || st.AmojoID == "" {
		controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
		return ctrl.Result{}, nil
	}
	giveUp := func(reason string) (ctrl.Result, error) {
		r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventDisconnectFailed, "Disconnect",
			"Channel %s left connected in %s: %s; disconnect it in Kommo", st.ConnectedChannel.ChannelID, inst.Spec.AccountDomain, reason)
		logf.FromContext(ctx).Info("Gave up disconnecting the channel", "reason", reason)
		controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
		return ctrl.Result{}, nil
	}

	integration := &kommov1.KommoIntegration{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: inst.Namespace, Name: inst.Spec.IntegrationRef.Name}, integration); err != nil {
		if apierrors.IsNotFound(err) {
			return giveUp("the KommoIntegration is gone, so the disconnect cannot be signed")
		}
		return ctrl.Result{}, err
	}
	if integration.Spec.Chat == nil {
		return giveUp("the KommoIntegration has no chat channel any more")
	}
	secret, err := secretValue(ctx, r.APIReader, inst.Namespace, integration.Spec.Chat.SecretRef)
	if err != nil {
		var missing *errSecretMissing
		if errors.As(err, &missing) {
			return giveUp(missing.Error())
		}
		return ctrl.Result{}, err
	}
	if st.FailedAttempts >= maxDisconnectAttempts {
		return giveUp(fmt.Sprintf("%d attempts failed", st.FailedAttempts))
	}
	if ok, err := r.mayCallKommo(ctx, s); !ok || err != nil {
		return ctrl.Result{RequeueAfter: s.requeueAfter}, err
	}
	err = r.Kommo.Disconnect(ctx, inst.Spec.AccountDomain, kommo.Channel{ID: st.ConnectedChannel.ChannelID, Secret: secret}, st.AmojoID)
	if err != nil && kommo.KindOf(err) != kommo.KindNotFound {
		r.kommoFailure(ctx, s, kommov1.ConditionChannelConnected, err)
		return ctrl.Result{RequeueAfter: max(s.requeueAfter, time.Second)}, nil
	}
	r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, eventDisconnected, "Disconnect",
		"Disconnected channel %s from %s", st.ConnectedChannel.ChannelID, inst.Spec.AccountDomain)
	logf.FromContext(ctx).Info("Disconnected channel", "channel", st.ConnectedChannel.ChannelID)
	controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
	return ctrl.Result{}, nil
}
