package kommotest

import (
	"reflect"
	"slices"
	"testing"
)

// TestStateCoversTheSimulator fails when the simulator learns something that Export and
// Import do not carry: extend State (and its test), or, when the new field is not state
// (a counter, a cache), list it below as such.
func TestStateCoversTheSimulator(t *testing.T) {
	carried := map[reflect.Type][]string{
		reflect.TypeFor[Simulator](): {"o", "jwtKey", "mu", "integrations", "accounts", "byAmojo", "renamed", "codes", "access",
			"refresh", "channels", "connections", "limiters", "faults", "calls", "secrets", "replays", "codeSeq", "stats", "nextID"},
		reflect.TypeFor[integration]():  {"clientID", "secret", "redirectURI", "widgetCode", "multipleSources"},
		reflect.TypeFor[account]():      {"host", "id", "amojoID", "pipelines", "sources"},
		reflect.TypeFor[authCode]():     {"acct", "clientID", "expires", "used", "seq", "exchanges", "reuses", "exchangedAt"},
		reflect.TypeFor[grant]():        {"acct", "clientID", "access", "refresh", "accessExp", "refreshExp", "used", "refreshUsed", "revoked", "next", "origin"},
		reflect.TypeFor[channel]():      {"id", "secret", "clientID"},
		reflect.TypeFor[storedSource](): {"Source", "clientID"},
		reflect.TypeFor[Source]():       {"ID", "Name", "PipelineID", "ExternalID", "Default", "OriginCode"},
		reflect.TypeFor[Pipeline]():     {"ID", "Name", "IsMain", "IsArchive"},
	}
	for typ, want := range carried {
		var got []string
		for i := range typ.NumField() {
			got = append(got, typ.Field(i).Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s has fields %v; State carries %v: extend State, Export and Import", typ.Name(), got, want)
		}
	}
}
