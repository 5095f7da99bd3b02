package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/kommo"
)

// reconcileSources keeps the account's lead sources as declared, the last concern: after
// the connect, after every install, whenever the declarations change, and hourly to repair
// drift. It never blocks the grant or the channel; a failure shows on SourcesSynced.
func (r *InstallationReconciler) reconcileSources(ctx context.Context, s *installationScope) error {
	inst, st := s.inst, &s.inst.Status
	in := SourcesInput(s.integration, inst, "")
	if len(in.Template) == 0 && len(in.Declared) == 0 && len(in.Previous) == 0 {
		meta.RemoveStatusCondition(&st.Conditions, kommov1.ConditionSourcesSynced)
		st.SourcesSynced = nil
		return nil
	}
	if s.tokens == nil || !s.tokens.ExpiresAt.After(s.now) || (s.chat != nil && !channelUpToDate(st, s.chat)) {
		return nil // waits for a grant and the connect
	}
	digest := sourcesDigest(in)
	if last := st.SourcesSynced; last != nil && last.Declarations == digest && equalMicro(last.Install, st.InstalledAt) {
		if left := last.Time.Add(SourcesResyncInterval).Sub(s.now); left > 0 {
			s.requeue(left)
			return nil
		}
	}
	if r.waiting(s, concernSources) {
		return nil
	}
	if ok, err := r.tokenContent(ctx, s); !ok || err != nil {
		return err
	}
	in.AccessToken = s.tokens.AccessToken
	res := SyncSources(ctx, r.Kommo, in)
	RecordSources(inst, res)
	if res.Err != nil {
		if kommo.KindOf(res.Err) == kommo.KindUnauthorized && s.tokens.RefreshToken != "" && s.failing(concernSources) == nil {
			st.RefreshTime = ptr.To(metav1.NewTime(s.now.Truncate(time.Second))) // the token may be dead
		}
		r.failed(ctx, s, concernSources, sourcesFailureReason(res.Err), res.Err)
		return nil
	}
	s.succeeded(concernSources)
	st.SourcesSynced = &kommov1.SourcesSync{Time: metav1.NewTime(s.now), Install: st.InstalledAt.DeepCopy(), Declarations: digest}
	s.requeue(SourcesResyncInterval)
	return nil
}

// sourcesDigest identifies what is declared, so that a change syncs at once.
func sourcesDigest(in SourcesSyncInput) string {
	data, _ := json.Marshal([]any{in.Template, in.Declared, in.OriginCode, in.WidgetCode})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

func equalMicro(a, b *metav1.MicroTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}
