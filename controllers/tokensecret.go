package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
)

// annotationAuthorization on a token Secret holds the authorization.receivedAt its tokens
// were exchanged for. Written together with the tokens, it tells a restarted controller
// that a code was already exchanged even when status never recorded it: codes are single-use.
const annotationAuthorization = "kommo-operator.io/authorization"

// annotationRefreshing on a token Secret says a controller replica is refreshing its
// tokens: "<replica> <RFC 3339 time>". It fences the refresh across replicas — during a
// change of leader two may run for a moment — so that a refresh token is never sent by
// one while another's call with it is on the wire. It is cleared with the write of the
// new pair, and ignored once older than a single-use call can take.
const annotationRefreshing = "kommo-operator.io/refreshing"

// tokens is the content of a token Secret.
type tokens struct {
	AccessToken   string
	RefreshToken  string // empty for long-lived tokens
	ExpiresAt     time.Time
	AccountDomain string
	AccountID     int64
	AmojoID       string
	ScopeID       string
	// Authorization is the authorization.receivedAt the tokens came from, "" for long-lived.
	Authorization string
	// Refreshing is the annotationRefreshing fence, "" when no refresh is in flight.
	Refreshing string
	// Content is false when only the Secret's metadata was read (the cache holds no
	// more): the tokens, AmojoID, ScopeID and AccountDomain are then unknown, and
	// ExpiresAt is what status says.
	Content bool
}

// tokenSecretName is <installation>-token, shortened with a hash of the full name when that
// would not be a valid object name.
func tokenSecretName(installation string) string {
	const suffix = "-token"
	if len(installation)+len(suffix) <= 253 {
		return installation + suffix
	}
	sum := sha256.Sum256([]byte(installation))
	return strings.TrimRight(installation[:253-len(suffix)-17], ".-") + "-" + hex.EncodeToString(sum[:8]) + suffix
}

// receivedAtKey renders an authorization time for annotationAuthorization, with the
// microseconds that order two installs within one second.
func receivedAtKey(t metav1.MicroTime) string { return t.UTC().Format(time.RFC3339Nano) }

// buildTokenSecret is the token Secret of inst: typed, owned by inst (so it is garbage
// collected with it), labelled for the operator's Secret cache, with the integration's
// template metadata. Labels of the KommoIntegration itself are never copied: GitOps tools
// prune what carries their tracking label.
func buildTokenSecret(inst *kommov1.KommoInstallation, integration *kommov1.KommoIntegration, t tokens) *corev1.Secret {
	labels, annotations := map[string]string{}, map[string]string{}
	if tpl := integration.Spec.TokenSecretTemplate; tpl != nil {
		for k, v := range tpl.Labels {
			if !reservedKey(k) {
				labels[k] = v
			}
		}
		for k, v := range tpl.Annotations {
			if !reservedKey(k) {
				annotations[k] = v
			}
		}
	}
	labels[kommov1.LabelManagedBy] = kommov1.ManagedByValue
	labels[kommov1.LabelIntegration] = integration.Name
	if t.AccountID != 0 {
		labels[kommov1.LabelAccountID] = strconv.FormatInt(t.AccountID, 10)
	}
	if t.Authorization != "" {
		annotations[annotationAuthorization] = t.Authorization
	}
	if t.Refreshing != "" {
		annotations[annotationRefreshing] = t.Refreshing
	}

	data := map[string][]byte{
		kommov1.TokenKeyAccessToken:   []byte(t.AccessToken),
		kommov1.TokenKeyExpiresAt:     []byte(t.ExpiresAt.UTC().Format(time.RFC3339)),
		kommov1.TokenKeyAccountDomain: []byte(t.AccountDomain),
	}
	if t.RefreshToken != "" {
		data[kommov1.TokenKeyRefreshToken] = []byte(t.RefreshToken)
	}
	if t.AccountID != 0 {
		data[kommov1.TokenKeyAccountID] = []byte(strconv.FormatInt(t.AccountID, 10))
	}
	if t.AmojoID != "" {
		data[kommov1.TokenKeyAmojoID] = []byte(t.AmojoID)
	}
	if t.ScopeID != "" {
		data[kommov1.TokenKeyScopeID] = []byte(t.ScopeID)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        tokenSecretName(inst.Name),
			Namespace:   inst.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         kommov1.GroupVersion.String(),
				Kind:               "KommoInstallation",
				Name:               inst.Name,
				UID:                inst.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Type: kommov1.SecretTypeToken,
		Data: data,
	}
}

// readTokens parses a token Secret written by buildTokenSecret.
func readTokens(s *corev1.Secret) tokens {
	t := tokens{
		AccessToken:   string(s.Data[kommov1.TokenKeyAccessToken]),
		RefreshToken:  string(s.Data[kommov1.TokenKeyRefreshToken]),
		AccountDomain: string(s.Data[kommov1.TokenKeyAccountDomain]),
		AmojoID:       string(s.Data[kommov1.TokenKeyAmojoID]),
		ScopeID:       string(s.Data[kommov1.TokenKeyScopeID]),
		Authorization: s.Annotations[annotationAuthorization],
		Refreshing:    s.Annotations[annotationRefreshing],
	}
	t.ExpiresAt, _ = time.Parse(time.RFC3339, string(s.Data[kommov1.TokenKeyExpiresAt]))
	t.AccountID, _ = strconv.ParseInt(string(s.Data[kommov1.TokenKeyAccountID]), 10, 64)
	t.Content = true
	return t
}

// tokensFromMetadata is what a token Secret's metadata tells of its grant; the expiry
// is status's, which the controller writes with every pair.
func tokensFromMetadata(m *metav1.ObjectMeta, st *kommov1.KommoInstallationStatus) tokens {
	t := tokens{Authorization: m.Annotations[annotationAuthorization], Refreshing: m.Annotations[annotationRefreshing]}
	t.AccountID, _ = strconv.ParseInt(m.Labels[kommov1.LabelAccountID], 10, 64)
	if st.AccessTokenExpiresAt != nil {
		t.ExpiresAt = st.AccessTokenExpiresAt.Time
	}
	return t
}

// reservedKey reports whether a label or annotation key is the operator's to set.
func reservedKey(k string) bool {
	return strings.HasPrefix(k, "kommo-operator.io/") || k == kommov1.LabelManagedBy
}

// refreshFence is the annotationRefreshing value of replica at now.
func refreshFence(replica string, now time.Time) string {
	return replica + " " + now.UTC().Format(time.RFC3339Nano)
}

// fencedFor is how long a refresh must still wait for another replica's fence; 0 when
// there is none, it is ours, or it is older than a single-use call can take (its holder
// died: what it sent is then recovered by Kommo's grace rule).
func fencedFor(fence, replica string, now time.Time) time.Duration {
	holder, at, ok := strings.Cut(fence, " ")
	if !ok || holder == replica {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return 0
	}
	return max(t.Add(singleUseTimeout).Sub(now), 0)
}
