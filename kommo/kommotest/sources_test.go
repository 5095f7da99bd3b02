package kommotest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

func bearer(tok string) http.Header {
	h := jsonHdr()
	h.Set("Authorization", "Bearer "+tok)
	return h
}

func TestSourcesEndpoints(t *testing.T) {
	f := newFixture(t, kommotest.Options{SourceLimit: 3})
	tok := f.exchange().AccessToken
	h := bearer(tok)

	if st, body := f.do("GET", host, "/api/v4/sources", h, ""); st != 204 || body != "" {
		t.Fatalf("no sources: %d %q, want 204 with no body", st, body)
	}
	if st, _ := f.do("GET", host, "/api/v4/sources", jsonHdr(), ""); st != 401 {
		t.Fatalf("without a token: %d", st)
	}
	if st, _ := f.do("POST", host, "/api/v4/sources", h, `{"name":"a","external_id":"a"}`); st != 400 {
		t.Fatalf("an object instead of an array: %d", st)
	}
	st, body := f.do("POST", host, "/api/v4/sources", h, `[{"name":"A","external_id":"Chat-A","default":true},{"name":"B","external_id":"b","default":true}]`)
	if st != 200 || !strings.Contains(body, `"request_id":"1"`) || !strings.Contains(body, `"external_id":"chat-a"`) {
		t.Fatalf("create: %d %s", st, body)
	}
	src := f.sim.Sources(host, clientID)
	if len(src) != 2 || src[0].Default || !src[1].Default {
		t.Fatalf("two defaults in one request: %+v, want only the last to stay the default", src)
	}

	// external_id is immutable; a PATCH without pipeline_id moves the source to the main pipeline.
	sales := f.sim.AddPipeline(host, "Sales")
	st, body = f.do("PATCH", host, "/api/v4/sources", h, fmt.Sprintf(`[{"id":%d,"external_id":"other"}]`, src[0].ID))
	if st != 400 || !strings.Contains(body, `"NotEditable"`) {
		t.Fatalf("changing external_id: %d %s", st, body)
	}
	st, _ = f.do("PATCH", host, fmt.Sprintf("/api/v4/sources/%d", src[0].ID), h, fmt.Sprintf(`{"pipeline_id":%d}`, sales))
	if st != 200 || f.sim.Sources(host, clientID)[0].PipelineID != sales {
		t.Fatalf("PATCH one: %d %+v", st, f.sim.Sources(host, clientID))
	}
	st, _ = f.do("PATCH", host, "/api/v4/sources", h, fmt.Sprintf(`[{"id":%d,"name":"A2"}]`, src[0].ID))
	if got := f.sim.Sources(host, clientID)[0]; st != 200 || got.PipelineID != f.sim.MainPipeline(host) || got.Name != "A2" {
		t.Fatalf("PATCH without pipeline_id: %d %+v", st, got)
	}

	// The limit counts the integration's sources in the account.
	st, body = f.do("POST", host, "/api/v4/sources", h, `[{"name":"c","external_id":"c"},{"name":"d","external_id":"d"}]`)
	if st != 400 || !strings.Contains(body, `"request_id":"1"`) || !strings.Contains(body, "SourcesLimitExceeded") || len(f.sim.Sources(host, clientID)) != 2 {
		t.Fatalf("over the limit of 3: %d %s", st, body)
	}

	// Single DELETE: 204, then 404.
	path := fmt.Sprintf("/api/v4/sources/%d", src[1].ID)
	if st, _ := f.do("DELETE", host, path, h, ""); st != 204 {
		t.Fatalf("DELETE one: %d", st)
	}
	if st, _ := f.do("DELETE", host, path, h, ""); st != 404 {
		t.Fatalf("DELETE one again: %d", st)
	}

	// Pipelines, archived included.
	f.sim.ArchivePipeline(host, sales, true)
	st, body = f.do("GET", host, "/api/v4/leads/pipelines", h, "")
	var ps struct {
		Embedded struct {
			Pipelines []struct {
				ID        int64 `json:"id"`
				IsMain    bool  `json:"is_main"`
				IsArchive bool  `json:"is_archive"`
			} `json:"pipelines"`
		} `json:"_embedded"`
	}
	if st != 200 || json.Unmarshal([]byte(body), &ps) != nil || len(ps.Embedded.Pipelines) != 2 ||
		!ps.Embedded.Pipelines[0].IsMain || !ps.Embedded.Pipelines[1].IsArchive {
		t.Fatalf("pipelines: %d %s", st, body)
	}

	calls := map[string]int{}
	for _, c := range f.sim.Calls() {
		calls[c.Op]++
	}
	if calls["list_sources"] != 2 || calls["create_sources"] != 3 || calls["update_sources"] != 3 || calls["delete_sources"] != 2 || calls["pipelines"] != 1 {
		t.Errorf("ops in the call log: %v", calls)
	}
}

func TestSourcesControlAPI(t *testing.T) {
	f := newFixture(t, kommotest.Options{})
	f.sim.PutSource(host, clientID, kommotest.Source{Name: "Chat", ExternalID: "Chat"})
	st, body := f.do("GET", "127.0.0.1", "/_sim/sources?account="+host+"&client_id="+clientID, nil, "")
	if st != 200 || !strings.Contains(body, `"external_id":"chat"`) {
		t.Fatalf("/_sim/sources: %d %s", st, body)
	}
	st, _ = f.do("POST", "127.0.0.1", "/_sim/fault", jsonHdr(), `{"op":"create_sources","externalID":"chat2"}`)
	if st != 204 || f.sim.PendingFaults() != 1 {
		t.Fatalf("item fault over the control API: %d", st)
	}
}
