package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// rawNamespace holds the raw measurements' objects: outside the namespace the controller
// watches, so they are the API server's work alone.
const rawNamespace = "scale-raw"

// The writes an install makes, keyed as apiWrites counts them.
const (
	secretCreate  = "POST secrets"
	secretUpdate  = "PUT secrets"
	secretDelete  = "DELETE secrets"
	installCreate = "POST kommoinstallations"
	installPatch  = "PATCH kommoinstallations"
	statusPatch   = "PATCH kommoinstallations/status"
	eventCreate   = "POST events"
)

// rawRates are what this API server takes in this run, in writes per second from as many
// clients as the burst, unthrottled, for each write an install makes, shaped as the
// webhook and the controller make it.
type rawRates map[string]float64

func (r rawRates) secrets() float64       { return r[secretCreate] }
func (r rawRates) installations() float64 { return r[installCreate] }

// webhookWrites is the rate of an install's two webhook writes (a code Secret, then the
// installation) at the raw rates: the most the webhook could record.
func (r rawRates) webhookWrites() float64 { return 1 / (1/r.secrets() + 1/r.installations()) }

// floor is how long writes take with each at its own raw rate. A write not measured
// counts at the create rate of its kind.
func (r rawRates) floor(writes writeCounts) time.Duration {
	s := 0.0
	for key, n := range writes {
		rate, ok := r[key]
		switch {
		case ok:
		case strings.Contains(key, " kommoinstallations"):
			rate = r.installations()
		default:
			rate = r.secrets()
		}
		s += n / rate
	}
	return time.Duration(s * float64(time.Second))
}

// createFloor is the older, simpler floor: every write at the raw Secret create rate.
func (r rawRates) createFloor(writes writeCounts) time.Duration {
	return time.Duration(writes.total() / r.secrets() * float64(time.Second))
}

// fastest is, for each write, the higher of the two rates.
func (r rawRates) fastest(o rawRates) rawRates {
	f := rawRates{}
	for k, v := range r {
		f[k] = max(v, o[k])
	}
	return f
}

func (r rawRates) String() string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, r[k]))
	}
	return strings.Join(parts, ", ")
}

// rawWriteRates measures rawRates with count objects of each kind in rawNamespace, in
// the order an install makes them: Secrets created, updated and deleted one by one;
// KommoInstallations created, their labels patched and their status patched (both with
// the optimistic lock the controller uses), then deleted; events created. round names
// the objects of one measurement.
func (b *bench) rawWriteRates(ctx context.Context, count int, round string) (rawRates, error) {
	err := b.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rawNamespace}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	r := rawRates{}
	value := []byte(strings.Repeat("x", 1000))
	secrets := make([]*corev1.Secret, count)
	for i := range secrets {
		secrets[i] = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: rawNamespace, Name: fmt.Sprintf("raw-%s-%06d", round, i)},
			Data:       map[string][]byte{"code": value},
		}
	}
	now := metav1.NewMicroTime(time.Now())
	installs := make([]*kommov1.KommoInstallation, count)
	for i := range installs {
		domain := fmt.Sprintf("raw%06d.%s.kommo.com", i, round)
		installs[i] = &kommov1.KommoInstallation{
			ObjectMeta: metav1.ObjectMeta{Namespace: rawNamespace, Name: "raw." + domain,
				Labels: map[string]string{kommov1.LabelIntegration: "raw"}},
			Spec: kommov1.KommoInstallationSpec{
				IntegrationRef: kommov1.LocalObjectReference{Name: "raw"},
				AccountDomain:  domain,
				Authorization: &kommov1.Authorization{
					CodeSecretRef: kommov1.SecretKeyRef{Name: fmt.Sprintf("%s%032d", kommov1.CodeSecretPrefix, i), Key: kommov1.AuthorizationCodeKey},
					ReceivedAt:    now,
					FromWidget:    true,
				},
			},
		}
	}
	steps := []struct {
		key   string
		write func(i int) error
	}{
		{secretCreate, func(i int) error { return b.admin.Create(ctx, secrets[i]) }},
		{secretUpdate, func(i int) error {
			// The token Secret's update: the same keys, one more value.
			secrets[i].Data = map[string][]byte{"code": value, "account_id": []byte("31000000")}
			return b.admin.Update(ctx, secrets[i])
		}},
		{secretDelete, func(i int) error { return b.admin.Delete(ctx, secrets[i]) }},
		{installCreate, func(i int) error { return b.admin.Create(ctx, installs[i]) }},
		{installPatch, func(i int) error {
			orig := installs[i].DeepCopy()
			installs[i].Labels[kommov1.LabelAccountID] = fmt.Sprint(31000000 + i)
			return b.admin.Patch(ctx, installs[i], client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		}},
		{statusPatch, func(i int) error {
			orig := installs[i].DeepCopy()
			installs[i].Status = readyStatus(installs[i], i)
			return b.admin.Status().Patch(ctx, installs[i], client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		}},
		{eventCreate, func(i int) error { return b.admin.Create(ctx, rawEvent(installs[i], i)) }},
	}
	for _, step := range steps {
		start := time.Now()
		if err := forEach(count, b.c.clients, step.write); err != nil {
			return nil, fmt.Errorf("raw %s: %w", step.key, err)
		}
		r[step.key] = float64(count) / time.Since(start).Seconds()
	}
	// Out of the webhook's cache and the API server's watch cache before the burst.
	for _, obj := range []client.Object{&kommov1.KommoInstallation{}, &eventsv1.Event{}} {
		if err := b.admin.DeleteAllOf(ctx, obj, client.InNamespace(rawNamespace)); err != nil {
			return nil, fmt.Errorf("deleting the raw measurement's objects: %w", err)
		}
	}
	return r, nil
}

// readyStatus is the status of a connected, Ready installation, as the controller writes
// it after an install.
func readyStatus(inst *kommov1.KommoInstallation, i int) kommov1.KommoInstallationStatus {
	now := metav1.Now()
	micro := metav1.NewMicroTime(now.Time)
	cond := func(typ, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, Message: msg,
			LastTransitionTime: now, ObservedGeneration: inst.Generation}
	}
	chat := kommov1.ChatStatus{ChannelID: "f5b5c7d9-0a1b-4c2d-8e3f-405162738495", Title: "raw", HookAPIVersion: "v2"}
	return kommov1.KommoInstallationStatus{
		ObservedGeneration: inst.Generation,
		Conditions: []metav1.Condition{
			cond(kommov1.ConditionReady, kommov1.ReasonReady, "The access token is valid and the channel is connected"),
			cond(kommov1.ConditionAuthorized, kommov1.ReasonAuthorized, "The access token is valid until "+now.Add(24*time.Hour).UTC().Format(time.RFC3339)),
			cond(kommov1.ConditionInstalled, kommov1.ReasonExchanged, "The install's code was exchanged for tokens"),
			cond(kommov1.ConditionChannelConnected, kommov1.ReasonConnected, "Channel connected"),
		},
		AccountDomain:        inst.Spec.AccountDomain,
		AccountID:            int64(31000000 + i),
		AmojoID:              fmt.Sprintf("6c2b8d1e-4f3a-4b5c-9d6e-%012d", i),
		ScopeID:              fmt.Sprintf("f5b5c7d9-0a1b-4c2d-8e3f-405162738495_6c2b8d1e-4f3a-4b5c-9d6e-%012d", i),
		ConnectedChannel:     &kommov1.ConnectedChannel{ChatStatus: chat, Install: micro.DeepCopy(), SecretRef: &kommov1.SecretKeyRef{Name: "raw-channel", Key: "secret"}},
		TokenSecretName:      inst.Name + "-tokens",
		TokenSecretVersion:   "123456",
		AccessTokenExpiresAt: ptr.To(metav1.NewTime(now.Add(24 * time.Hour))),
		RefreshTime:          ptr.To(metav1.NewTime(now.Add(15 * time.Hour))),
		InstalledAt:          micro.DeepCopy(),
		LastAttempt:          &kommov1.Outcome{ReceivedAt: micro, Result: kommov1.OutcomeSucceeded, Reason: kommov1.ReasonExchanged, Time: now},
		ConnectedAt:          ptr.To(now),
	}
}

// rawEvent is an event like the controller's for a finished install.
func rawEvent(inst *kommov1.KommoInstallation, i int) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: rawNamespace, Name: fmt.Sprintf("%s.%x", inst.Name, i)},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: "kommo-operator-controller",
		ReportingInstance:   "kommo-operator-controller-raw",
		Action:              "Connect",
		Reason:              "Installed",
		Regarding:           corev1.ObjectReference{Kind: "KommoInstallation", APIVersion: kommov1.GroupVersion.String(), Namespace: rawNamespace, Name: inst.Name, UID: inst.UID},
		Note:                "Installed and connected the channel",
		Type:                corev1.EventTypeNormal,
	}
}
