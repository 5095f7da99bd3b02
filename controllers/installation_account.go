package controllers

import (
	"context"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// reconcileAccount looks up the account id and amojo_id while they are unknown. A 401
// means the access token may be dead: the refresh is brought forward once per failure
// streak (never a loop of refreshes). A 401 or 404 may also mean the account renamed its
// subdomain: Kommo is asked once where it lives now.
func (r *InstallationReconciler) reconcileAccount(ctx context.Context, s *installationScope) error {
	st := &s.inst.Status
	if s.tokens == nil || !s.tokens.ExpiresAt.After(s.now) || (st.AccountID != 0 && st.AmojoID != "") {
		return nil
	}
	if r.waiting(s, concernAccount) {
		return nil
	}
	if ok, err := r.liveCheck(ctx, s); !ok || err != nil {
		return err
	}
	if ok, err := r.tokenContent(ctx, s); !ok || err != nil {
		return err
	}
	account, err := r.Kommo.Account(ctx, s.host(), s.tokens.AccessToken)
	if movable(err) && r.followRename(ctx, s, s.tokens) {
		account, err = r.Kommo.Account(ctx, s.host(), s.tokens.AccessToken)
	}
	if err != nil {
		reason, _ := reasonOf(err)
		if kommo.KindOf(err) == kommo.KindUnauthorized && s.tokens.RefreshToken != "" && s.failing(concernAccount) == nil {
			st.RefreshTime = ptr.To(metav1.NewTime(s.now.Truncate(time.Second)))
			s.requeue(time.Second)
		}
		r.failed(ctx, s, concernAccount, reason, err)
		return nil
	}
	s.succeeded(concernAccount)
	st.AccountID, st.AmojoID = account.ID, account.AmojoID
	setLabel(s.inst, kommov1.LabelAccountID, strconv.FormatInt(account.ID, 10))
	return nil
}
