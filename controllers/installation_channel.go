package controllers

import (
	"context"
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// channelUpToDate reports whether the last connect was made with the effective chat
// settings for the current install. Connects recorded before ConnectedChannel.Install
// existed were made for the installedAt of their time.
func channelUpToDate(st *kommov1.KommoInstallationStatus, chat *kommov1.ChatStatus) bool {
	cur := st.ConnectedChannel
	if cur == nil || chat == nil || cur.ChatStatus != *chat {
		return false
	}
	return cur.Install == nil || st.InstalledAt == nil || cur.Install.Equal(st.InstalledAt)
}

// reconcileChannel connects the chat channel after every install and whenever the
// effective chat settings change, and records the scope_id. A change of channel
// disconnects the old one first, signed with the old channel's secret.
func (r *InstallationReconciler) reconcileChannel(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	if s.chat == nil {
		// Chat was removed from the integration: nothing to connect and nothing this
		// operator can sign a disconnect with any more.
		meta.RemoveStatusCondition(&st.Conditions, kommov1.ConditionChannelConnected)
		st.ConnectedChannel, st.ScopeID = nil, ""
		controllerutil.RemoveFinalizer(inst, kommov1.FinalizerChannel)
		return nil
	}
	if channelUpToDate(st, s.chat) {
		return nil
	}
	switch {
	case s.tokens == nil:
		s.channelPending(kommov1.ReasonConnectPending, "Waiting for tokens")
		return nil
	case st.AmojoID == "":
		msg := "Waiting for the account's amojo_id"
		if b := s.failing(concernAccount); b != nil {
			msg += ": " + b.Message
		}
		s.channelPending(kommov1.ReasonConnectPending, msg)
		return nil
	}
	if r.waiting(s, concernChannel) {
		return nil
	}
	if cur := st.ConnectedChannel; cur != nil && !strings.EqualFold(cur.ChannelID, s.chat.ChannelID) {
		if done, err := r.disconnectOld(ctx, s, cur); !done || err != nil {
			return err
		}
	}
	ref := s.integration.Spec.Chat.SecretRef
	secret, err := secretValue(ctx, s.secrets, inst.Namespace, ref)
	if err != nil {
		var missing *errSecretMissing
		if !errors.As(err, &missing) {
			return err
		}
		s.channelPending(kommov1.ReasonSecretNotFound, missing.Error())
		s.requeue(dependencyPoll)
		return nil
	}
	if ok, err := r.liveCheck(ctx, s); !ok || err != nil {
		return err // a connect from a stale cache would repeat the last one
	}
	// Hold the finalizer before the channel can be connected, so that a deletion racing
	// this reconcile still disconnects.
	if controllerutil.AddFinalizer(inst, kommov1.FinalizerChannel) {
		if err := r.patchMetadata(ctx, s); err != nil {
			return err
		}
	}
	conn, err := r.Kommo.Connect(ctx, s.host(), kommo.Channel{ID: s.chat.ChannelID, Secret: secret},
		kommo.ConnectRequest{AmojoID: st.AmojoID, Title: s.chat.Title, HookAPIVersion: s.chat.HookAPIVersion})
	if err != nil {
		reason, _ := chatReasonOf(err)
		r.failed(ctx, s, concernChannel, reason, err)
		return nil
	}
	s.succeeded(concernChannel)
	st.ScopeID, st.ConnectedAt = conn.ScopeID, ptr.To(metav1.NewTime(s.now))
	st.ConnectedChannel = &kommov1.ConnectedChannel{ChatStatus: *s.chat, Install: st.InstalledAt.DeepCopy(), SecretRef: ref.DeepCopy()}
	logf.FromContext(ctx).Info("Connected channel", "channel", s.chat.ChannelID, "scopeID", conn.ScopeID)
	return nil
}

// disconnectOld disconnects a channel the integration no longer uses. A disconnect that
// cannot succeed (its secret is gone, Kommo refuses it) is given up with a Warning, so the
// new channel still gets connected; an outage is retried (done false).
func (r *InstallationReconciler) disconnectOld(ctx context.Context, s *installationScope, old *kommov1.ConnectedChannel) (bool, error) {
	inst, st := s.inst, &s.inst.Status
	ref := s.integration.Spec.Chat.SecretRef
	if old.SecretRef != nil {
		ref = *old.SecretRef
	}
	giveUp := func(why string) {
		r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, eventDisconnectFailed, "Disconnect",
			"Channel %s left connected in %s: %s; disconnect it in Kommo", old.ChannelID, s.host(), why)
	}
	secret, err := secretValue(ctx, s.secrets, inst.Namespace, ref)
	var missing *errSecretMissing
	switch {
	case errors.As(err, &missing):
		giveUp(missing.Error())
	case err != nil:
		return false, err
	default:
		if ok, err := r.liveCheck(ctx, s); !ok || err != nil {
			return false, err
		}
		err := r.Kommo.Disconnect(ctx, s.host(), kommo.Channel{ID: old.ChannelID, Secret: secret}, st.AmojoID)
		switch {
		case err == nil || kommo.KindOf(err) == kommo.KindNotFound:
			r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, eventDisconnected, "Disconnect",
				"Disconnected channel %s from %s: the integration uses channel %s now", old.ChannelID, s.host(), s.chat.ChannelID)
		case kommo.IsTerminal(err):
			giveUp(err.Error())
		default:
			reason, _ := chatReasonOf(err)
			r.failed(ctx, s, concernChannel, reason, err)
			return false, nil
		}
	}
	st.ConnectedChannel, st.ScopeID = nil, ""
	return true, nil
}
