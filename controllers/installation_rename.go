package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-operator/kommo-operator/kommo"
)

// movable reports whether a failure at the account host may mean the account renamed its
// subdomain: the old host answers 401 or 404 (KOMMO_API.md).
func movable(err error) bool {
	switch kommo.KindOf(err) {
	case kommo.KindNotFound, kommo.KindUnauthorized:
		return true
	}
	return false
}

// followRename asks Kommo once per pass where the account of t lives now, and moves the
// installation there (status.accountDomain; the token Secret follows) when that is a
// different host under the integration's accountDomains. It reports whether it moved.
// The subdomain endpoint is the access token's api_domain, itself checked against
// accountDomains: the refresh token is sent there.
func (r *InstallationReconciler) followRename(ctx context.Context, s *installationScope, t *tokens) bool {
	if s.renameTried || t == nil || t.RefreshToken == "" {
		return false
	}
	s.renameTried = true
	log := logf.FromContext(ctx)
	domains := effectiveDomains(s.integration)
	claims, err := kommo.ParseClaims(t.AccessToken)
	if err != nil || !kommo.MatchesDomain(claims.APIDomain, domains) {
		log.Info("Cannot ask where the account lives now: the access token names no allowed api_domain")
		return false
	}
	sub, err := r.Kommo.CurrentSubdomain(ctx, claims.APIDomain, t.RefreshToken)
	if err != nil {
		log.Info("Asking where the account lives now failed", "error", err.Error())
		return false
	}
	host, old := sub.Host(), s.host()
	if host == old || !kommo.MatchesDomain(host, domains) {
		return false
	}
	s.inst.Status.AccountDomain = host
	r.Recorder.Eventf(s.inst, nil, corev1.EventTypeNormal, eventAccountRenamed, "FollowRename",
		"The account moved from %s to %s; the installation follows it", old, host)
	log.Info("Following a renamed account", "from", old, "to", host)
	return true
}
