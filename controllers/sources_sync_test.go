package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/controllers"
	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

const (
	syncHost     = "acme.kommo.com"
	syncClientID = "7b0f4f3e-2c1d-4e5f-8a9b-0c1d2e3f4a5b"
	originCode   = "kommo.ext.30470678"
)

// sourcesWorld is a simulated Kommo account with the integration installed, and the
// real client pointed at it: the sync runs exactly as the controller would run it.
type sourcesWorld struct {
	t     *testing.T
	sim   *kommotest.Simulator
	c     *kommo.Client
	app   kommo.App
	token string
	in    controllers.SourcesSyncInput
}

func newSourcesWorld(t *testing.T, o kommotest.Options) *sourcesWorld {
	t.Helper()
	o.QPS = -1
	sim, srv := kommotest.NewServer(o)
	t.Cleanup(srv.Close)
	w := &sourcesWorld{t: t, sim: sim, app: kommo.App{ClientID: syncClientID, ClientSecret: "sources-client-secret", RedirectURI: redirectURI}}
	sim.AddIntegration(w.app.ClientID, w.app.ClientSecret, w.app.RedirectURI)
	sim.SetWidget(w.app.ClientID, "wa_bridge", false)
	sim.AddAccount(syncHost, 31361463, "52e591f7-c98f-4255-8495-827210138c81")
	c, err := kommo.NewClient(kommo.Options{Endpoint: srv.URL, QPS: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	w.c = c
	w.install()
	w.in = controllers.SourcesSyncInput{Host: syncHost, OriginCode: originCode, WidgetCode: "wa_bridge"}
	return w
}

// install performs an install (or a reinstall) and keeps the new access token.
func (w *sourcesWorld) install() {
	w.t.Helper()
	tok, err := w.c.ExchangeCode(context.Background(), syncHost, w.app, w.sim.IssueCode(syncHost, w.app.ClientID))
	if err != nil {
		w.t.Fatal(err)
	}
	w.token = tok.AccessToken
}

// sync runs one sync and carries its status forward, as the controller does.
func (w *sourcesWorld) sync() controllers.SourcesSyncResult {
	w.t.Helper()
	w.in.AccessToken = w.token
	res := controllers.SyncSources(context.Background(), w.c, w.in)
	w.in.Previous = res.Sources
	if strings.Contains(res.Condition.Message, w.token) || (res.Err != nil && strings.Contains(res.Err.Error(), w.token)) {
		w.t.Fatalf("the access token leaked into %q / %v", res.Condition.Message, res.Err)
	}
	return res
}

// kommo returns the integration's sources in Kommo by external id.
func (w *sourcesWorld) kommo() map[string]kommotest.Source {
	out := map[string]kommotest.Source{}
	for _, s := range w.sim.Sources(syncHost, w.app.ClientID) {
		out[s.ExternalID] = s
	}
	return out
}

func (w *sourcesWorld) callCounts() map[string]int {
	out := map[string]int{}
	for _, c := range w.sim.Calls() {
		out[c.Op]++
	}
	return out
}

// noDriftCostsOneGET asserts that a sync now changes nothing and makes one request.
func (w *sourcesWorld) noDriftCostsOneGET() {
	w.t.Helper()
	before, status := w.callCounts(), fmt.Sprint(w.in.Previous)
	res := w.sync()
	after := w.callCounts()
	for op, n := range after {
		if d := n - before[op]; (op == "list_sources" && d != 1) || (op != "list_sources" && d != 0) {
			w.t.Errorf("a resync without drift made %d %s requests (want one list_sources and nothing else)", d, op)
		}
	}
	if fmt.Sprint(res.Sources) != status || res.Err != nil {
		w.t.Errorf("a resync without drift changed status.sources\nbefore %s\nafter  %v (%v)", status, res.Sources, res.Err)
	}
}

func wantCondition(t *testing.T, c metav1.Condition, status metav1.ConditionStatus, reason string, mentions ...string) {
	t.Helper()
	if c.Type != kommov1.ConditionSourcesSynced || c.Status != status || c.Reason != reason {
		t.Fatalf("condition %+v, want %s=%s reason %s", c, kommov1.ConditionSourcesSynced, status, reason)
	}
	for _, m := range mentions {
		if !strings.Contains(c.Message, m) {
			t.Errorf("condition message %q does not mention %q", c.Message, m)
		}
	}
}

func statusOf(t *testing.T, res controllers.SourcesSyncResult, externalID string) kommov1.SourceStatus {
	t.Helper()
	for _, s := range res.Sources {
		if s.ExternalID == externalID {
			return s
		}
	}
	t.Fatalf("status.sources has no %q: %+v", externalID, res.Sources)
	return kommov1.SourceStatus{}
}

func TestSyncSourcesTemplateAndInstallation(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	sales := w.sim.AddPipeline(syncHost, "Sales")
	main := w.sim.MainPipeline(syncHost)
	w.in.Template = []kommov1.Source{
		{ExternalID: "wa", Name: "WhatsApp", Default: true},
		{ExternalID: "tg", Name: "Telegram"},
	}
	w.in.Declared = []kommov1.Source{
		{ExternalID: "wa-5550101", Name: "+1 555 0101", PipelineName: "Sales", Default: true},
		{ExternalID: "TG", Name: "Telegram (acme)", OriginCode: "kommo.ext.tg"},
	}
	res := w.sync()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantCondition(t, res.Condition, metav1.ConditionTrue, kommov1.ReasonSynced)
	got := w.kommo()
	if len(got) != 4 { // three declared, and Kommo's own widget source
		t.Fatalf("Kommo has %+v", got)
	}
	if s := got["wa"]; s.PipelineID != main || s.Default || s.OriginCode != originCode {
		t.Errorf("template source: %+v; want the main pipeline, not the default (the installation's default wins), origin %s", s, originCode)
	}
	if s := got["wa-5550101"]; s.PipelineID != sales || !s.Default {
		t.Errorf("installation source by pipeline name: %+v, want pipeline %d and the default", s, sales)
	}
	if s := got["tg"]; s.Name != "Telegram (acme)" || s.OriginCode != "kommo.ext.tg" {
		t.Errorf("the installation's tg should win over the template's: %+v", s)
	}
	if s := got["wa_bridge"]; s.Name != "wa_bridge" {
		t.Errorf("Kommo's widget source was touched: %+v", s)
	}
	if st := statusOf(t, res, "wa-5550101"); st.PipelineID != sales || st.PipelineName != "Sales" || st.Ownership != kommov1.SourceCreated {
		t.Errorf("status of the named-pipeline source: %+v", st)
	}
	if st := statusOf(t, res, "wa"); st.PipelineID != main || !st.MainPipeline {
		t.Errorf("status of the main-pipeline source: %+v", st)
	}
	if len(res.Sources) != 3 {
		t.Errorf("status.sources = %+v, want the three declared only", res.Sources)
	}
	if res.Calls.Create != 1 || res.Calls.Pipelines != 1 || res.Calls.List != 1 {
		t.Errorf("calls %+v: want one list, one pipelines read (for the name), one batched create", res.Calls)
	}
	w.noDriftCostsOneGET()

	// A reinstall (new tokens, Kommo's widget source recreated if gone) keeps them.
	w.install()
	w.noDriftCostsOneGET()
}

func TestSyncSourcesPipelines(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	support := w.sim.AddPipeline(syncHost, "Support")
	old := w.sim.AddPipeline(syncHost, "Old")
	w.sim.ArchivePipeline(syncHost, old, true)
	w.in.Declared = []kommov1.Source{
		{ExternalID: "ok", Name: "ok", PipelineName: "Support"},
		{ExternalID: "typo", Name: "typo", PipelineName: "Suport"},
		{ExternalID: "archived", Name: "archived", PipelineID: old},
		{ExternalID: "by-id", Name: "by id", PipelineID: support},
		{ExternalID: "no-such-id", Name: "x", PipelineID: 999},
	}
	res := w.sync()
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonPipelineNotFound,
		`source "typo" names pipeline "Suport", which the account does not have`,
		`source "archived" names pipeline`, "which is archived",
		`source "no-such-id" names pipeline 999`)
	got := w.kommo()
	if got["ok"].PipelineID != support || got["by-id"].PipelineID != support {
		t.Errorf("the good sources did not sync: %+v", got)
	}
	for _, bad := range []string{"typo", "archived", "no-such-id"} {
		if _, ok := got[bad]; ok {
			t.Errorf("%s was created despite its pipeline", bad)
		}
	}
	if res.Calls.Pipelines != 1 {
		t.Errorf("pipelines read %d times, want once per sync", res.Calls.Pipelines)
	}

	// Fixing the declarations syncs the rest.
	w.in.Declared = w.in.Declared[:2]
	w.in.Declared[1].PipelineName = "Support"
	res = w.sync()
	wantCondition(t, res.Condition, metav1.ConditionTrue, kommov1.ReasonSynced)
	if got := w.kommo(); got["typo"].PipelineID != support {
		t.Errorf("after the fix: %+v", got)
	}
	if _, ok := w.kommo()["by-id"]; ok {
		t.Errorf("by-id is no longer declared and was created by the operator: it should be deleted")
	}
	w.noDriftCostsOneGET()
}

func TestSyncSourcesRepairsDrift(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	sales := w.sim.AddPipeline(syncHost, "Sales")
	w.in.Declared = []kommov1.Source{
		{ExternalID: "a", Name: "A", PipelineName: "Sales"},
		{ExternalID: "b", Name: "B", Default: true},
	}
	w.sync()
	main := w.sim.MainPipeline(syncHost)
	// Someone edits both in Kommo's UI.
	w.sim.EditSource(syncHost, w.app.ClientID, "a", func(s *kommotest.Source) { s.Name, s.PipelineID = "renamed", main })
	w.sim.EditSource(syncHost, w.app.ClientID, "b", func(s *kommotest.Source) { s.Default, s.PipelineID, s.OriginCode = false, sales, "other" })
	res := w.sync()
	wantCondition(t, res.Condition, metav1.ConditionTrue, kommov1.ReasonSynced)
	got := w.kommo()
	if a := got["a"]; a.Name != "A" || a.PipelineID != sales {
		t.Errorf("a not repaired: %+v", a)
	}
	if b := got["b"]; !b.Default || b.PipelineID != main || b.OriginCode != originCode {
		t.Errorf("b not repaired: %+v", b)
	}
	if res.Calls.Update != 1 || res.Calls.Updated != 2 || res.Calls.Pipelines != 0 {
		t.Errorf("calls %+v: want one batched update of two, no pipelines read (resolved before)", res.Calls)
	}
	// Each managed field on its own is drift.
	for _, edit := range []func(*kommotest.Source){
		func(s *kommotest.Source) { s.Default = false },
		func(s *kommotest.Source) { s.OriginCode = "kommo.ext.other" },
		func(s *kommotest.Source) { s.Name = "b" },
		func(s *kommotest.Source) { s.PipelineID = sales },
	} {
		w.sim.EditSource(syncHost, w.app.ClientID, "b", edit)
		if res := w.sync(); res.Calls.Updated != 1 {
			t.Errorf("a single drifted field was not repaired: %+v", res.Calls)
		}
		if b := w.kommo()["b"]; !b.Default || b.PipelineID != main || b.OriginCode != originCode || b.Name != "B" {
			t.Errorf("b not repaired: %+v", b)
		}
	}
	// Deleted in Kommo: created again.
	w.sim.EditSource(syncHost, w.app.ClientID, "a", func(s *kommotest.Source) {})
	id := w.kommo()["a"].ID
	if err := w.c.DeleteSources(context.Background(), syncHost, w.token, []kommo.SourceRef{{ID: id}}); err != nil {
		t.Fatal(err)
	}
	res = w.sync()
	if a := w.kommo()["a"]; a.ID == 0 || a.ID == id || statusOf(t, res, "a").ID != a.ID || statusOf(t, res, "a").Ownership != kommov1.SourceCreated {
		t.Errorf("a deleted in Kommo was not recreated and recorded: %+v, %+v", a, res.Sources)
	}
	w.noDriftCostsOneGET()
}

func TestSyncSourcesDeletesOnlyWhatItCreated(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	ctx := context.Background()
	// Sources that exist before the operator: one it will adopt, one it never hears of.
	w.sim.PutSource(syncHost, w.app.ClientID, kommotest.Source{Name: "Legacy", ExternalID: "legacy"})
	w.sim.PutSource(syncHost, w.app.ClientID, kommotest.Source{Name: "Hand-made", ExternalID: "hand-made"})
	// Another integration's source with a declared external id is not ours.
	other := kommo.App{ClientID: "0f0e0d0c-0b0a-4909-8807-060504030201", ClientSecret: "other", RedirectURI: redirectURI}
	w.sim.AddIntegration(other.ClientID, other.ClientSecret, other.RedirectURI)
	otherTok, err := w.c.ExchangeCode(ctx, syncHost, other, w.sim.IssueCode(syncHost, other.ClientID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.CreateSources(ctx, syncHost, otherTok.AccessToken, []kommo.NewSource{{Name: "theirs", ExternalID: "mine"}}); err != nil {
		t.Fatal(err)
	}

	w.in.Declared = []kommov1.Source{{ExternalID: "mine", Name: "Mine"}, {ExternalID: "LEGACY", Name: "Legacy"}}
	res := w.sync()
	wantCondition(t, res.Condition, metav1.ConditionTrue, kommov1.ReasonSynced)
	if st := statusOf(t, res, "LEGACY"); st.Ownership != kommov1.SourceAdopted {
		t.Errorf("legacy: %+v, want adopted", st)
	}
	if st := statusOf(t, res, "mine"); st.Ownership != kommov1.SourceCreated {
		t.Errorf("mine: %+v, want created (the other integration's source is not ours)", st)
	}
	if res.Calls.Adopted != 1 || res.Calls.Created != 1 {
		t.Errorf("calls %+v: want one adoption and one create, no duplicate of legacy", res.Calls)
	}

	w.in.Declared = nil
	res = w.sync()
	if len(res.Sources) != 0 || res.Calls.Deleted != 1 {
		t.Fatalf("after removing every declaration: status %+v, calls %+v", res.Sources, res.Calls)
	}
	got := w.kommo()
	if _, ok := got["mine"]; ok {
		t.Errorf("the source the operator created is still in Kommo")
	}
	for _, keep := range []string{"legacy", "hand-made", "wa_bridge"} {
		if _, ok := got[keep]; !ok {
			t.Errorf("%s was deleted: the operator did not create it", keep)
		}
	}
	if theirs, _ := w.c.ListSources(ctx, syncHost, otherTok.AccessToken); len(theirs) != 1 {
		t.Errorf("the other integration's source: %+v", theirs)
	}
	// Nothing declared, nothing managed: no call at all, and no condition.
	before := len(w.sim.Calls())
	if res := w.sync(); res.Condition.Type != "" || len(w.sim.Calls()) != before {
		t.Errorf("with nothing to do: condition %+v, %d calls", res.Condition, len(w.sim.Calls())-before)
	}
}

func TestSyncSourcesBadItemReportedOthersSync(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	w.sim.Inject(kommotest.Fault{Op: "create_sources", ExternalID: "bad", Times: 100})
	w.in.Declared = []kommov1.Source{{ExternalID: "a", Name: "A"}, {ExternalID: "bad", Name: "+1 555 0199 private"}, {ExternalID: "c", Name: "C"}}
	res := w.sync()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonSourceRejected, `source "bad" was refused by Kommo (InvalidValue at name)`)
	if strings.Contains(res.Condition.Message, "555 0199") {
		t.Errorf("the condition echoes the refused source's name: %q", res.Condition.Message)
	}
	got := w.kommo()
	if _, ok := got["a"]; !ok {
		t.Errorf("a did not sync: %+v", got)
	}
	if _, ok := got["c"]; !ok {
		t.Errorf("c did not sync: %+v", got)
	}
	if len(res.Sources) != 2 {
		t.Errorf("status.sources = %+v, want a and c", res.Sources)
	}

	// A refused update is reported the same way; the others are patched.
	w.sim.ClearFaults()
	w.sim.Inject(kommotest.Fault{Op: "update_sources", ExternalID: "a", Times: 100})
	w.in.Declared = []kommov1.Source{{ExternalID: "a", Name: "A2"}, {ExternalID: "bad", Name: "B"}, {ExternalID: "c", Name: "C2"}}
	res = w.sync()
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonSourceRejected, `source "a" was refused`)
	if got := w.kommo(); got["c"].Name != "C2" || got["bad"].Name != "B" || got["a"].Name != "A" {
		t.Errorf("after a refused update: %+v", got)
	}
}

func TestSyncSourcesLimit(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{SourceLimit: 3})
	w.in.Limit = 3
	// Kommo's widget source counts: room for two.
	w.in.Declared = []kommov1.Source{{ExternalID: "a", Name: "A"}, {ExternalID: "b", Name: "B"}, {ExternalID: "c", Name: "C"}}
	res := w.sync()
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonSourceLimitReached, `source "c" is over Kommo's limit of 3`)
	if got := w.kommo(); len(got) != 3 {
		t.Errorf("Kommo has %+v", got)
	}
	// Kommo's own count can be lower than the operator's (older accounts: 50).
	w.in.Limit = 0
	res = w.sync()
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonSourceRejected, `source "c" was refused by Kommo (SourcesLimitExceeded)`)
	if res.Err != nil {
		t.Errorf("a refused item is not a failed call: %v", res.Err)
	}
}

func TestSyncSourcesFailedCalls(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	w.in.Declared = []kommov1.Source{{ExternalID: "a", Name: "A"}}
	w.sync()
	prev := fmt.Sprint(w.in.Previous)

	w.sim.Inject(kommotest.Fault{Op: "list_sources", Status: 503})
	res := w.sync()
	if res.Err == nil || fmt.Sprint(res.Sources) != prev {
		t.Fatalf("a failed list: err %v, status %+v (want the previous %s)", res.Err, res.Sources, prev)
	}
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonKommoUnavailable)

	w.in.Declared = append(w.in.Declared, kommov1.Source{ExternalID: "b", Name: "B", PipelineName: "Sales"})
	w.sim.Inject(kommotest.Fault{Op: "pipelines", Status: 429, RetryAfter: 2e9})
	res = w.sync()
	if kommo.KindOf(res.Err) != kommo.KindRateLimited || fmt.Sprint(res.Sources) != prev {
		t.Fatalf("a rate-limited pipelines read: err %v, status %+v", res.Err, res.Sources)
	}
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonRateLimited)
	if _, ok := w.kommo()["b"]; ok {
		t.Errorf("b was created without its pipeline")
	}

	w.sim.AddPipeline(syncHost, "Sales")
	w.sim.Inject(kommotest.Fault{Op: "create_sources", Status: 500})
	res = w.sync()
	if res.Err == nil || len(res.Sources) != 1 {
		t.Fatalf("a failed create: err %v, status %+v", res.Err, res.Sources)
	}
	res = w.sync()
	wantCondition(t, res.Condition, metav1.ConditionTrue, kommov1.ReasonSynced)
}

func TestSyncSourcesManyInBatches(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	w.sim.SetWidget(w.app.ClientID, "wa_bridge", true) // "multiple sources": Kommo creates none
	for i := range 80 {
		w.in.Declared = append(w.in.Declared, kommov1.Source{ExternalID: fmt.Sprint("n", i), Name: fmt.Sprint("Number ", i)})
	}
	w.sim.Inject(kommotest.Fault{Op: "create_sources", ExternalID: "n70", Times: 100})
	res := w.sync()
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonSourceRejected, `source "n70"`)
	if len(w.kommo()) != 80 || len(res.Sources) != 79 {
		t.Fatalf("Kommo has %d, status %d; want 79 created (plus Kommo's widget source)", len(w.kommo()), len(res.Sources))
	}
	// Requests: 50, then 30 refused, then 29 again.
	if n := w.callCounts()["create_sources"]; n != 3 {
		t.Errorf("%d create requests, want 3", n)
	}
}

func TestSyncSourcesWidgetCodeIsKommos(t *testing.T) {
	w := newSourcesWorld(t, kommotest.Options{})
	w.in.Declared = []kommov1.Source{{ExternalID: "WA_BRIDGE", Name: "mine now"}, {ExternalID: "a", Name: "A"}}
	res := w.sync()
	wantCondition(t, res.Condition, metav1.ConditionFalse, kommov1.ReasonSourceRejected, `source "WA_BRIDGE" is the widget code`)
	if got := w.kommo()["wa_bridge"]; got.Name != "wa_bridge" {
		t.Errorf("Kommo's widget source was changed: %+v", got)
	}
	if _, ok := w.kommo()["a"]; !ok {
		t.Errorf("a did not sync")
	}
}

func TestSourcesInputAndRecord(t *testing.T) {
	integration := &kommov1.KommoIntegration{Spec: kommov1.KommoIntegrationSpec{
		Chat:       &kommov1.ChatSpec{Code: originCode},
		WidgetCode: "wa_bridge",
		Sources:    []kommov1.Source{{ExternalID: "t", Name: "T"}},
	}}
	inst := &kommov1.KommoInstallation{
		ObjectMeta: metav1.ObjectMeta{Generation: 4},
		Spec:       kommov1.KommoInstallationSpec{AccountDomain: "old.kommo.com", Sources: []kommov1.Source{{ExternalID: "i", Name: "I"}}},
		Status:     kommov1.KommoInstallationStatus{AccountDomain: "new.kommo.com", Sources: []kommov1.SourceStatus{{ExternalID: "i", ID: 1, Ownership: kommov1.SourceCreated}}},
	}
	in := controllers.SourcesInput(integration, inst, "tok")
	if in.Host != "new.kommo.com" || in.OriginCode != originCode || in.WidgetCode != "wa_bridge" || in.AccessToken != "tok" ||
		len(in.Template) != 1 || len(in.Declared) != 1 || len(in.Previous) != 1 {
		t.Fatalf("input %+v", in)
	}
	controllers.RecordSources(inst, controllers.SourcesSyncResult{
		Sources:   []kommov1.SourceStatus{{ExternalID: "i", ID: 2, Ownership: kommov1.SourceCreated}},
		Condition: metav1.Condition{Type: kommov1.ConditionSourcesSynced, Status: metav1.ConditionTrue, Reason: kommov1.ReasonSynced, Message: "ok"},
	})
	c := inst.Status.Conditions
	if len(c) != 1 || c[0].ObservedGeneration != 4 || c[0].LastTransitionTime.IsZero() || inst.Status.Sources[0].ID != 2 {
		t.Fatalf("recorded %+v, %+v", c, inst.Status.Sources)
	}
	controllers.RecordSources(inst, controllers.SourcesSyncResult{})
	if len(inst.Status.Conditions) != 0 || inst.Status.Sources != nil {
		t.Fatalf("nothing to sync left %+v, %+v", inst.Status.Conditions, inst.Status.Sources)
	}
}
