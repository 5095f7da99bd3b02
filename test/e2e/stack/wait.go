package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// pollInterval is how often Poll looks again; a poll interval, not synchronisation.
const pollInterval = 100 * time.Millisecond

// Poll calls check until it reports true, returns an error, ctx ends or timeout passes.
// check also says what it saw, for the error when time runs out.
func Poll(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (ok bool, seen string, err error)) error {
	return PollEvery(ctx, pollInterval, timeout, what, check)
}

// PollEvery is Poll looking again every interval, for checks that cost more.
func PollEvery(ctx context.Context, interval, timeout time.Duration, what string, check func(context.Context) (ok bool, seen string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "nothing yet"
	for {
		ok, seen, err := check(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("waiting for %s: %w", what, err)
		case ok:
			return nil
		case seen != "":
			last = seen
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
			}
			return fmt.Errorf("waiting for %s: %w (last seen: %s)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// InstallationName is the name of the installation of account.
func (s *Stack) InstallationName(account string) string { return s.Integration + "." + account }

// TokenSecretName is the default name of the token Secret of account's installation.
func (s *Stack) TokenSecretName(account string) string { return s.InstallationName(account) + "-token" }

// Installation returns the installation of account.
func (s *Stack) Installation(ctx context.Context, account string) (*kommov1.KommoInstallation, error) {
	inst := &kommov1.KommoInstallation{}
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.InstallationName(account)}, inst)
	return inst, err
}

// WaitInstallation polls the installation of account until cond holds; cond says what
// it saw. A process of the stack that dies ends the wait at once.
func (s *Stack) WaitInstallation(ctx context.Context, account, what string, cond func(*kommov1.KommoInstallation) (bool, string)) (*kommov1.KommoInstallation, error) {
	var inst *kommov1.KommoInstallation
	err := Poll(ctx, Deadline, s.InstallationName(account)+": "+what, func(ctx context.Context) (bool, string, error) {
		if err := s.Crashed(); err != nil {
			return false, "", err
		}
		got, err := s.Installation(ctx, account)
		if err != nil {
			return false, err.Error(), nil
		}
		inst = got
		ok, seen := cond(got)
		return ok, seen, nil
	})
	return inst, err
}

// WaitCondition waits until the installation's condition typ has status and reason.
func (s *Stack) WaitCondition(ctx context.Context, account, typ string, status metav1.ConditionStatus, reason string) (*kommov1.KommoInstallation, error) {
	return s.WaitInstallation(ctx, account, fmt.Sprintf("%s=%s (%s)", typ, status, reason), func(inst *kommov1.KommoInstallation) (bool, string) {
		c := meta.FindStatusCondition(inst.Status.Conditions, typ)
		if c == nil {
			return false, "no " + typ + " condition"
		}
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == inst.Generation,
			fmt.Sprintf("%s=%s (%s) %q, observedGeneration %d of %d", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, inst.Generation)
	})
}

// WaitReady waits until the installation of account is Ready=True.
func (s *Stack) WaitReady(ctx context.Context, account string) (*kommov1.KommoInstallation, error) {
	return s.WaitCondition(ctx, account, kommov1.ConditionReady, metav1.ConditionTrue, kommov1.ReasonReady)
}

// WaitDeleted waits until obj no longer exists.
func (s *Stack) WaitDeleted(ctx context.Context, obj client.Object) error {
	key := client.ObjectKeyFromObject(obj)
	return Poll(ctx, Deadline, fmt.Sprintf("%T %s to be gone", obj, key), func(ctx context.Context) (bool, string, error) {
		err := s.Client.Get(ctx, key, obj.DeepCopyObject().(client.Object))
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, "it still exists", nil
	})
}

// TokenSecret returns the token Secret of account's installation, nil when there is
// none. The tokens it holds join the secrets the leak scan looks for.
func (s *Stack) TokenSecret(ctx context.Context, account string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.TokenSecretName(account)}, secret)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.remember("access token", string(secret.Data[kommov1.TokenKeyAccessToken]))
	s.remember("refresh token", string(secret.Data[kommov1.TokenKeyRefreshToken]))
	return secret, nil
}

// RequestRefresh sets the refresh-requested-at annotation on account's installation to
// the next whole second, as `kubectl annotate … refresh-requested-at=$(date -u +%FT%TZ)`
// a second from now would.
func (s *Stack) RequestRefresh(ctx context.Context, account string) (string, error) {
	at := time.Now().Add(time.Second).UTC().Format(time.RFC3339)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		kommov1.AnnotationRefreshRequestedAt: at,
	}}})
	inst := &kommov1.KommoInstallation{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.InstallationName(account)}}
	return at, s.Client.Patch(ctx, inst, client.RawPatch(types.MergePatchType, patch))
}

// Events returns the events (events.k8s.io) about the named object in the namespace; all
// of them when name is empty.
func (s *Stack) Events(ctx context.Context, name string) ([]eventsv1.Event, error) {
	list := &eventsv1.EventList{}
	if err := s.Client.List(ctx, list, client.InNamespace(s.Namespace)); err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if name == "" || e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out, nil
}

// WaitEvent waits for an event of type and reason about the installation of account.
func (s *Stack) WaitEvent(ctx context.Context, account, typ, reason string) (*eventsv1.Event, error) {
	var found *eventsv1.Event
	name := s.InstallationName(account)
	err := Poll(ctx, Deadline, fmt.Sprintf("a %s event %s about %s", typ, reason, name), func(ctx context.Context) (bool, string, error) {
		events, err := s.Events(ctx, name)
		if err != nil {
			return false, err.Error(), nil
		}
		var seen []string
		for i, e := range events {
			if e.Type == typ && e.Reason == reason {
				found = &events[i]
				return true, "", nil
			}
			seen = append(seen, e.Type+"/"+e.Reason)
		}
		return false, fmt.Sprint("events ", seen), nil
	})
	return found, err
}

// KubectlGet runs `kubectl get kommoinstallations -n <namespace> -o wide` as the
// administrator and returns its output.
func (s *Stack) KubectlGet(ctx context.Context) (string, error) {
	out, err := s.kubectl(ctx, nil, "--kubeconfig", s.AdminKubeconfig, "get", "kommoinstallations", "-n", s.Namespace, "-o", "wide")
	return string(out), err
}
