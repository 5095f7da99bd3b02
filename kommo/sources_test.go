package kommo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

func TestSourcesLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	tok := e.install()

	got, err := e.c.ListSources(ctx, host, tok.AccessToken)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListSources with none = %v, %v; want the 204 read as an empty list", got, err)
	}
	sales := e.sim.AddPipeline(host, "Sales")
	created, err := e.c.CreateSources(ctx, host, tok.AccessToken, []kommo.NewSource{
		{Name: "WhatsApp", ExternalID: "WA-Main", Default: true, OriginCode: "kommo.ext.30470678"},
		{Name: "Sales line", ExternalID: "wa-sales", PipelineID: sales},
	})
	if err != nil || len(created) != 2 {
		t.Fatalf("CreateSources = %v, %v", created, err)
	}
	main := e.sim.MainPipeline(host)
	if created[0].PipelineID != main || !created[0].Default || created[0].OriginCode != "kommo.ext.30470678" ||
		!strings.EqualFold(created[0].ExternalID, "WA-Main") || created[1].PipelineID != sales {
		t.Fatalf("created %+v; want the first in the main pipeline %d, default, the second in %d", created, main, sales)
	}

	got, err = e.c.ListSources(ctx, host, tok.AccessToken, "wa-sales")
	if err != nil || len(got) != 1 || got[0].ID != created[1].ID {
		t.Fatalf("filtered ListSources = %+v, %v", got, err)
	}
	got, err = e.c.ListSources(ctx, host, tok.AccessToken, "nothing-like-it")
	if err != nil || len(got) != 0 {
		t.Fatalf("ListSources with a filter matching nothing = %v, %v", got, err)
	}

	updated, err := e.c.UpdateSources(ctx, host, tok.AccessToken, []kommo.SourceUpdate{
		{ID: created[1].ID, ExternalID: "wa-sales", Name: "Sales", PipelineID: main, Default: true},
	})
	if err != nil || len(updated) != 1 || updated[0].Name != "Sales" || updated[0].PipelineID != main {
		t.Fatalf("UpdateSources = %+v, %v", updated, err)
	}
	for _, s := range e.sim.Sources(host, clientID) {
		if s.Default != (s.ID == created[1].ID) {
			t.Errorf("after making wa-sales the default: %+v (setting a default unsets the previous one)", s)
		}
	}

	if err := e.c.DeleteSources(ctx, host, tok.AccessToken, []kommo.SourceRef{{ID: created[0].ID}, {ID: created[1].ID}}); err != nil {
		t.Fatal(err)
	}
	if left := e.sim.Sources(host, clientID); len(left) != 0 {
		t.Fatalf("left after delete: %+v", left)
	}
	ps, err := e.c.Pipelines(ctx, host, tok.AccessToken)
	if err != nil || len(ps) != 2 || !ps[0].IsMain || ps[1].Name != "Sales" || ps[1].IsArchive {
		t.Fatalf("Pipelines = %+v, %v", ps, err)
	}
}

// Kommo scopes sources to the integration whose token is used.
func TestSourcesPerIntegration(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	other := kommo.App{ClientID: "9c1f7a52-5e0e-4f7e-8f1e-2a4b6c8d0e1f", ClientSecret: "other-secret", RedirectURI: redirectURI}
	e.sim.AddIntegration(other.ClientID, other.ClientSecret, other.RedirectURI)
	otherTok, err := e.c.ExchangeCode(ctx, host, other, e.sim.IssueCode(host, other.ClientID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.CreateSources(ctx, host, otherTok.AccessToken, []kommo.NewSource{{Name: "theirs", ExternalID: "shared"}}); err != nil {
		t.Fatal(err)
	}
	tok := e.install()
	if got, err := e.c.ListSources(ctx, host, tok.AccessToken); err != nil || len(got) != 0 {
		t.Fatalf("another integration's source is visible: %+v, %v", got, err)
	}
	if _, err := e.c.CreateSources(ctx, host, tok.AccessToken, []kommo.NewSource{{Name: "ours", ExternalID: "shared"}}); err != nil {
		t.Fatalf("the same external id in another integration: %v", err)
	}
}

func TestCreateSourcesBatches(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	tok := e.install()
	var in []kommo.NewSource
	for i := range 99 {
		in = append(in, kommo.NewSource{Name: fmt.Sprint("source ", i), ExternalID: fmt.Sprint("s", i)})
	}
	created, err := e.c.CreateSources(ctx, host, tok.AccessToken, in)
	if err != nil || len(created) != 99 {
		t.Fatalf("CreateSources(99) = %d sources, %v", len(created), err)
	}
	if n := e.sim.CallCount("create_sources", host); n != 2 {
		t.Errorf("99 sources took %d requests, want 2 (at most 50 each)", n)
	}
	// The 101st is over the limit.
	_, err = e.c.CreateSources(ctx, host, tok.AccessToken, []kommo.NewSource{{Name: "a", ExternalID: "a"}, {Name: "b", ExternalID: "b"}})
	ke := wantKind(t, err, kommo.KindBadRequest, 400)
	if len(ke.Items) != 1 || ke.Items[0].ExternalID != "b" || ke.Items[0].Code != "SourcesLimitExceeded" || ke.Items[0].Index != 1 {
		t.Fatalf("over the limit: %+v", ke.Items)
	}
}

func TestSourceItemErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	tok := e.install()
	first, err := e.c.CreateSources(ctx, host, tok.AccessToken, []kommo.NewSource{{Name: "taken", ExternalID: "taken"}})
	if err != nil {
		t.Fatal(err)
	}
	secretName := "Name that must not leak 5550100"
	cases := []struct {
		name  string
		in    []kommo.NewSource
		index int
		code  string
		field string
	}{
		{"duplicate external id", []kommo.NewSource{{Name: "ok", ExternalID: "fine"}, {Name: secretName, ExternalID: "TAKEN"}}, 1, "NotUnique", "external_id"},
		{"duplicate within the batch", []kommo.NewSource{{Name: secretName, ExternalID: "x"}, {Name: secretName, ExternalID: "X"}}, 1, "NotUnique", "external_id"},
		{"unknown pipeline", []kommo.NewSource{{Name: secretName, ExternalID: "p", PipelineID: 42}}, 0, "NotSupportedChoice", "pipeline_id"},
		{"origin code all digits", []kommo.NewSource{{Name: secretName, ExternalID: "o", OriginCode: "123"}}, 0, "InvalidValue", "origin_code"},
		{"name missing", []kommo.NewSource{{ExternalID: "n"}}, 0, "NotBlank", "name"},
		{"external id too long", []kommo.NewSource{{Name: secretName, ExternalID: strings.Repeat("e", 37)}}, 0, "InvalidValue", "external_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.CreateSources(ctx, host, tok.AccessToken, tc.in)
			ke := wantKind(t, err, kommo.KindBadRequest, 400)
			if len(ke.Items) != 1 {
				t.Fatalf("items = %+v, want one", ke.Items)
			}
			it := ke.Items[0]
			if it.Index != tc.index || it.ExternalID != tc.in[tc.index].ExternalID || it.Code != tc.code || it.Field != tc.field {
				t.Errorf("item error %+v, want index %d, external id %q, code %s at %s", it, tc.index, tc.in[tc.index].ExternalID, tc.code, tc.field)
			}
			if strings.Contains(err.Error(), secretName) || strings.Contains(err.Error(), "This value") {
				t.Errorf("error %q echoes the request or Kommo's detail text", err)
			}
		})
	}
	if got := e.sim.Sources(host, clientID); len(got) != 1 {
		t.Errorf("a refused batch created something: %+v", got)
	}

	// external_id is immutable; a refused update names the item by its external id.
	_, err = e.c.UpdateSources(ctx, host, tok.AccessToken, []kommo.SourceUpdate{{ID: first[0].ID + 1000, ExternalID: "ghost", Name: "x", PipelineID: e.sim.MainPipeline(host)}})
	ke := wantKind(t, err, kommo.KindBadRequest, 400)
	if len(ke.Items) != 1 || ke.Items[0].ExternalID != "ghost" || ke.Items[0].Code != "EntityNotFound" {
		t.Fatalf("update of an unknown id: %+v", ke.Items)
	}
	if !strings.Contains(err.Error(), `item "ghost" EntityNotFound at id`) {
		t.Errorf("error text %q does not name the item", err)
	}
	if _, err := e.c.UpdateSources(ctx, host, tok.AccessToken, []kommo.SourceUpdate{{ID: first[0].ID, Name: "x"}}); kommo.KindOf(err) != kommo.KindBadRequest {
		t.Errorf("an update without pipeline id was sent (Kommo would move the source to the main pipeline): %v", err)
	}
	err = e.c.DeleteSources(ctx, host, tok.AccessToken, []kommo.SourceRef{{ID: first[0].ID}, {ID: 1, ExternalID: "gone"}})
	ke = wantKind(t, err, kommo.KindBadRequest, 400)
	if len(ke.Items) != 1 || ke.Items[0].ExternalID != "gone" || ke.Items[0].Code != "EntityNotFound" {
		t.Fatalf("delete of an unknown id: %+v", ke.Items)
	}

	// A fault aimed at one item.
	e.sim.Inject(kommotest.Fault{Op: "create_sources", ExternalID: "bad"})
	_, err = e.c.CreateSources(ctx, host, tok.AccessToken, []kommo.NewSource{{Name: "a", ExternalID: "good"}, {Name: "b", ExternalID: "bad"}})
	ke = wantKind(t, err, kommo.KindBadRequest, 400)
	if len(ke.Items) != 1 || ke.Items[0].ExternalID != "bad" {
		t.Fatalf("item fault: %+v", ke.Items)
	}
}

func TestParseItemErrorShapes(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string
	}{
		{`{"validation-errors":[{"request_id":"1","errors":[{"code":"NotSupportedChoice","path":"1.pipeline_id","detail":"x"}]}]}`, "[{1  0 NotSupportedChoice pipeline_id}]"},
		{`{"errors":[{"request_id":"0","errors":{"code":"EntityNotFound","path":"id","detail":"x"}}],"status":400}`, "[{0  0 EntityNotFound id}]"},
		{`{"errors":[{"request_id":0,"errors":[{"code":"<script>","path":"secret.value"}]}]}`, "[{0  0  }]"},
		{`{"title":"Bad Request","status":400}`, "[]"},
		{`<html>`, "[]"},
	} {
		if got := fmt.Sprint(kommo.ParseItemErrors([]byte(tc.body))); got != tc.want {
			t.Errorf("ParseItemErrors(%s) = %s, want %s", tc.body, got, tc.want)
		}
	}
}

func TestWidgetSource(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kommotest.Options{}, kommo.Options{})
	e.sim.SetWidget(clientID, "wa_bridge", false)
	tok := e.install()
	got, err := e.c.ListSources(ctx, host, tok.AccessToken)
	if err != nil || len(got) != 1 || got[0].ExternalID != "wa_bridge" || got[0].PipelineID != e.sim.MainPipeline(host) {
		t.Fatalf("without multiple sources Kommo creates one source with the widget code: %+v, %v", got, err)
	}
	e.sim.SetWidget(clientID, "wa_bridge", true)
	if err := e.c.DeleteSources(ctx, host, tok.AccessToken, []kommo.SourceRef{{ID: got[0].ID}}); err != nil {
		t.Fatal(err)
	}
	tok = e.install()
	if got, _ := e.c.ListSources(ctx, host, tok.AccessToken); len(got) != 0 {
		t.Fatalf("with multiple sources Kommo creates none: %+v", got)
	}
}

func TestSourcesObserved(t *testing.T) {
	var ops []string
	e := newEnv(t, kommotest.Options{}, kommo.Options{Observe: func(api, op string, code int, _ time.Duration) {
		ops = append(ops, fmt.Sprintf("%s/%s/%d", api, op, code))
	}})
	ctx := context.Background()
	tok := e.install()
	e.c.ListSources(ctx, host, tok.AccessToken)
	created, _ := e.c.CreateSources(ctx, host, tok.AccessToken, []kommo.NewSource{{Name: "a", ExternalID: "a"}})
	e.c.UpdateSources(ctx, host, tok.AccessToken, []kommo.SourceUpdate{{ID: created[0].ID, Name: "b", PipelineID: created[0].PipelineID}})
	e.c.DeleteSources(ctx, host, tok.AccessToken, []kommo.SourceRef{{ID: created[0].ID}})
	e.c.Pipelines(ctx, host, tok.AccessToken)
	want := "[oauth/exchange/200 account/list_sources/204 account/create_sources/200 account/update_sources/200 account/delete_sources/204 account/pipelines/200]"
	if fmt.Sprint(ops) != want {
		t.Errorf("observed %v\nwant     %s", ops, want)
	}
	if _, err := e.c.ListSources(ctx, host, ""); kommo.KindOf(err) != kommo.KindBadRequest {
		t.Errorf("no token: %v", err)
	}
}

// A 400 body is Kommo's to write (or a proxy's): whatever it holds, the parsed items carry
// only safe codes and known fields, never text from the body.
func FuzzParseItemErrors(f *testing.F) {
	f.Add([]byte(`{"validation-errors":[{"request_id":"1","errors":[{"code":"NotSupportedChoice","path":"1.pipeline_id","detail":"x"}]}]}`))
	f.Add([]byte(`{"errors":[{"request_id":0,"errors":{"code":"EntityNotFound","path":"id"}}]}`))
	f.Add([]byte(`{"errors":[{"request_id":"-1","errors":[]}]}`))
	fields := map[string]bool{"": true, "id": true, "name": true, "external_id": true, "pipeline_id": true, "default": true, "origin_code": true, "services": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		seen := map[int]bool{}
		for _, ie := range kommo.ParseItemErrors(body) {
			if ie.Index < 0 || seen[ie.Index] {
				t.Fatalf("index %d (negative or repeated)", ie.Index)
			}
			seen[ie.Index] = true
			if !fields[ie.Field] || len(ie.Code) > 64 || strings.ContainsAny(ie.Code, " <>\"'") {
				t.Fatalf("unsafe item error %+v", ie)
			}
		}
	})
}
