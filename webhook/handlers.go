package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// routeFunc handles a request that passed the common checks and says how to answer it.
type routeFunc func(r *http.Request, start time.Time, log logr.Logger) (answer, string)

// instrument wraps a route with the checks every route shares (rate limit, method, no
// body, bounded query), the answer and the metrics. Logs carry the route and the path's
// namespace and integration, never the query: it holds the code.
func (s *Server) instrument(route string, fn routeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Path values join the logger only once they are known to be names.
		log := s.log.WithValues("route", route)
		a, outcome := s.precheck(w, r, log)
		if outcome == "" {
			a, outcome = fn(r, start, log)
		}
		writeAnswer(w, r, a)
		requestsTotal.WithLabelValues(route, outcome).Inc()
		requestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}

func (s *Server) precheck(w http.ResponseWriter, r *http.Request, log logr.Logger) (answer, string) {
	// Nothing below may read a body.
	r.Body = http.MaxBytesReader(w, r.Body, 0)
	if ip := clientIP(r, s.opts.TrustedProxies); !s.limiter.allow(ip) {
		log.V(1).Info("Rate limited", "client", ip.String())
		return ansRateLimited, outcomeRateLimited
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Connection", "close")
		return ansMethod, outcomeRejected
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		// Close rather than let the server drain a body nobody asked for.
		w.Header().Set("Connection", "close")
		return ansBody, outcomeRejected
	}
	if len(r.URL.RawQuery) > maxQueryBytes {
		return ansQueryTooLong, outcomeRejected
	}
	return answer{}, ""
}

// parseQuery parses the query and refuses one that repeats a parameter we read: which
// of two codes or referers would be the real one?
func parseQuery(raw string, params ...string) (url.Values, bool) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, false
	}
	for _, p := range params {
		if len(q[p]) > 1 {
			return nil, false
		}
	}
	return q, true
}

// integration finds the path's KommoIntegration in the cache.
func (s *Server) integration(ctx context.Context, r *http.Request, log *logr.Logger) (*kommov1.KommoIntegration, answer, string) {
	ns, name := r.PathValue("namespace"), r.PathValue("integration")
	// KommoIntegration names are at most 63 characters (CEL): they are label values.
	if len(validation.IsDNS1123Label(ns)) > 0 || len(name) > validation.DNS1123LabelMaxLength ||
		len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, ansUnknownIntegration, outcomeUnknownIntegration
	}
	*log = log.WithValues("namespace", ns, "integration", name)
	integ := &kommov1.KommoIntegration{}
	// Read-only: no copy of the cached object.
	err := s.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, integ, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		log.V(1).Info("Request for an unknown integration")
		return nil, ansUnknownIntegration, outcomeUnknownIntegration
	case err != nil:
		log.Error(err, "Reading the integration from the cache")
		return nil, ansError, outcomeError
	}
	return integ, answer{}, ""
}

// install is one validated install redirect. It holds the code: never log it whole.
type install struct {
	key         client.ObjectKey // of the KommoInstallation
	integration *kommov1.KommoIntegration
	host        string
	secretName  string
	code        string
	state       string
	fromWidget  bool
	receivedAt  time.Time
}

// String keeps the code out of anything that formats an install.
func (in install) String() string { return "install of " + in.key.String() }

func (s *Server) redirect(r *http.Request, start time.Time, log logr.Logger) (answer, string) {
	ctx := r.Context()
	receivedAt := s.stamp(s.now())
	q, ok := parseQuery(r.URL.RawQuery, "code", "referer", "state", "error")
	if !ok {
		return ansBadQuery, outcomeRejected
	}
	integ, a, outcome := s.integration(ctx, r, &log)
	if integ == nil {
		return a, outcome
	}
	if q.Has("error") {
		log.Info("Install declined in Kommo")
		return ansCancelled, outcomeDenied
	}
	// ParseReferer's errors never echo the input.
	host, err := kommo.ParseReferer(q.Get("referer"), integ.Spec.AccountDomains)
	if err != nil {
		log.V(1).Info("Rejected install: bad referer", "reason", err.Error())
		return ansBadReferer, outcomeRejected
	}
	log = log.WithValues("account", host)
	code := q.Get("code")
	if !validCode(code) {
		log.V(1).Info("Rejected install: missing or malformed code")
		return ansBadCode, outcomeRejected
	}
	state := q.Get("state")
	if !validState(state) {
		log.V(1).Info("Rejected install: malformed state")
		return ansBadState, outcomeRejected
	}
	name := integ.Name + "." + host
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		log.V(1).Info("Rejected install: account host too long")
		return ansBadReferer, outcomeRejected
	}
	in := install{
		key:         client.ObjectKey{Namespace: integ.Namespace, Name: name},
		integration: integ,
		host:        host,
		secretName:  codeSecretName(integ.Namespace, integ.Name, host, code),
		code:        code,
		state:       state,
		fromWidget:  q.Has("from_widget"),
		receivedAt:  receivedAt,
	}
	log = log.WithValues("installation", in.key)

	// A code already on the installation was recorded before: Kommo or the browser sent
	// it twice. Recording it again would make the controller exchange a used code.
	cached := &kommov1.KommoInstallation{}
	// (Not so on an installation being deleted: the install is recorded on the new one.)
	if err := s.cache.Get(ctx, in.key, cached, client.UnsafeDisableDeepCopy); err == nil && cached.DeletionTimestamp == nil &&
		cached.Spec.Authorization != nil && cached.Spec.Authorization.CodeSecretRef.Name == in.secretName {
		log.Info("Ignored a duplicate install")
		return accepted(ansInstalled, in), outcomeDuplicate
	}

	release, a, outcome := s.admitPending(ctx, in, clientIP(r, s.opts.TrustedProxies), log)
	if outcome != "" {
		return a, outcome
	}
	res := s.write(log, start, start.Add(s.opts.CodeLifetime), func(ctx context.Context) (string, error) {
		return s.recordInstall(ctx, in, log)
	}, release)
	switch {
	case res.outcome == outcomeDeferred:
		return accepted(ansAccepted, in), outcomeDeferred
	case res.err != nil:
		log.Error(res.err, "Could not record the install")
		return ansError, outcomeError
	}
	return accepted(ansInstalled, in), res.outcome
}

// codeSecretName is deterministic, so the same code delivered twice makes one Secret.
func codeSecretName(namespace, integration, host, code string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + integration + "/" + host + "/" + code))
	return kommov1.CodeSecretPrefix + hex.EncodeToString(sum[:16])
}

func (s *Server) revoke(r *http.Request, start time.Time, log logr.Logger) (answer, string) {
	ctx := r.Context()
	receivedAt := s.stamp(s.now())
	q, ok := parseQuery(r.URL.RawQuery, "client_uuid", "client_id", "account_id", "signature")
	if !ok {
		return ansBadQuery, outcomeRejected
	}
	integ, a, outcome := s.integration(ctx, r, &log)
	if integ == nil {
		return a, outcome
	}
	clientUUID := q.Get("client_uuid")
	if clientUUID == "" {
		clientUUID = q.Get("client_id") // the older documentation's name
	}
	accountID, signature := q.Get("account_id"), q.Get("signature")
	if !validClientUUID(clientUUID) || !validAccountID(accountID) || !validSignature(signature) {
		log.V(1).Info("Rejected revoke hook: missing or malformed parameters")
		return ansBadRevoke, outcomeRejected
	}
	log = log.WithValues("accountID", accountID)

	targets, err := s.revocationTargets(ctx, integ, accountID)
	if err != nil {
		log.Error(err, "Listing installations from the cache")
		return ansError, outcomeError
	}
	if len(targets) == 0 {
		// Nothing to revoke: never installed here, or already deleted.
		log.Info("Revoke hook for an account without an installation")
		return ansRevokeOK, outcomeNotFound
	}
	rev := kommov1.Revocation{
		ReceivedAt: metav1.NewMicroTime(receivedAt),
		AccountID:  accountID,
		ClientUUID: clientUUID,
		Signature:  signature,
	}
	res := s.write(log, start, start.Add(s.opts.CodeLifetime), func(ctx context.Context) (string, error) {
		return s.recordRevocation(ctx, targets, rev, log)
	}, nil)
	switch {
	case res.outcome == outcomeDeferred:
		return ansRevokeAccepted, outcomeDeferred
	case res.err != nil:
		log.Error(res.err, "Could not record the revoke hook")
		return ansError, outcomeError
	}
	return ansRevokeOK, res.outcome
}

// maxUnlabelledRevocations bounds the installations one revoke hook is recorded on when
// no installation is labelled with its account id yet.
const maxUnlabelledRevocations = 20

// revocationTargets are the installations a revoke hook for accountID is recorded on: those
// labelled with the account id; when there are none, the ones whose account id is not
// known yet (normally installs the controller is still exchanging), newest first and at
// most maxUnlabelledRevocations, so that a hook that overtakes the account lookup is not
// dropped. That is safe: the controller acts on a revocation only once the installation's
// account id is known and equals spec.revocation.accountID (it ignores it as OtherAccount
// otherwise), only for the install named in supersedes, and only after Kommo has
// confirmed that the tokens are dead. On another account's installation the hook costs
// one ignored revocation, never a grant.
func (s *Server) revocationTargets(ctx context.Context, integ *kommov1.KommoIntegration, accountID string) ([]revocationTarget, error) {
	list := &kommov1.KommoInstallationList{}
	if err := s.cache.List(ctx, list, client.InNamespace(integ.Namespace), client.UnsafeDisableDeepCopy,
		client.MatchingLabels{kommov1.LabelIntegration: integ.Name, kommov1.LabelAccountID: accountID}); err != nil {
		return nil, err
	}
	var targets []revocationTarget
	for i := range list.Items {
		if it := &list.Items[i]; it.Spec.IntegrationRef.Name == integ.Name {
			targets = append(targets, revocationTarget{key: client.ObjectKeyFromObject(it)})
		}
	}
	if len(targets) > 0 {
		return targets, nil
	}
	if err := s.cache.List(ctx, list, client.InNamespace(integ.Namespace), client.UnsafeDisableDeepCopy,
		client.MatchingFields{indexUnlabelled: integ.Name}); err != nil {
		return nil, err
	}
	items := list.Items
	slices.SortFunc(items, func(a, b kommov1.KommoInstallation) int { return receivedAt(&b).Compare(receivedAt(&a)) })
	for i := range items[:min(len(items), maxUnlabelledRevocations)] {
		targets = append(targets, revocationTarget{key: client.ObjectKeyFromObject(&items[i]), unlabelled: true})
	}
	return targets, nil
}

// receivedAt of the installation's install; the zero time when it holds none.
func receivedAt(it *kommov1.KommoInstallation) time.Time {
	if a := it.Spec.Authorization; a != nil {
		return a.ReceivedAt.Time
	}
	return time.Time{}
}

// validCode: present, bounded, printable ASCII without spaces.
func validCode(s string) bool {
	return len(s) > 0 && len(s) <= maxCodeBytes && allBytes(s, 0x21, 0x7e)
}

// validState: optional, within the CRD's bound, printable ASCII.
func validState(s string) bool {
	return len(s) <= maxStateBytes && allBytes(s, 0x20, 0x7e)
}

// validClientUUID matches the CRD's bound; the controller compares it with clientID.
func validClientUUID(s string) bool {
	return len(s) > 0 && len(s) <= 64 && allBytes(s, 0x21, 0x7e)
}

// validAccountID: Kommo's numeric account id, as the CRD and the label require.
func validAccountID(s string) bool {
	return len(s) > 0 && len(s) <= 20 && allBytes(s, '0', '9')
}

// validSignature: hex, as the CRD requires; the controller verifies it.
func validSignature(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func allBytes(s string, lo, hi byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < lo || s[i] > hi {
			return false
		}
	}
	return true
}
