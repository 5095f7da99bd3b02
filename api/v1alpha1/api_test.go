package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func validIntegration(ns string) *kommov1.KommoIntegration {
	return &kommov1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge", Namespace: ns},
		Spec: kommov1.KommoIntegrationSpec{
			ClientID:        "01d01160-d7a0-4087-b4af-6a1bb83fcd1d",
			ClientSecretRef: kommov1.SecretKeyRef{Name: "wa-bridge-kommo", Key: "client_secret"},
			RedirectURI:     "https://hooks.example.com/kommo/ns/wa-bridge/redirect",
		},
	}
}

func validInstallation(ns string) *kommov1.KommoInstallation {
	return &kommov1.KommoInstallation{
		ObjectMeta: metav1.ObjectMeta{Name: "wa-bridge.acme.kommo.com", Namespace: ns},
		Spec: kommov1.KommoInstallationSpec{
			IntegrationRef: kommov1.LocalObjectReference{Name: "wa-bridge"},
			AccountDomain:  "acme.kommo.com",
			Authorization: &kommov1.Authorization{
				CodeSecretRef: kommov1.SecretKeyRef{Name: "wa-bridge.acme.kommo.com-code-1", Key: "code"},
				ReceivedAt:    metav1.NewMicroTime(time.Now()),
			},
		},
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "kommo-operator.io_*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("expected the samples in config/samples, found %v (%v)", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := env.Client.Create(ctx, u, client.DryRunAll); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("%s rejected: %v", filepath.Base(f), err)
		}
	}
}

func TestIntegrationValidation(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*kommov1.KommoIntegration)
		message string // empty: must be accepted
	}{
		{"valid minimal", func(*kommov1.KommoIntegration) {}, ""},
		{"valid with chat", func(i *kommov1.KommoIntegration) {
			i.Spec.Chat = &kommov1.ChatSpec{ChannelID: "344a5002-f8ca-454d-af3d-396180102ac7", SecretRef: kommov1.SecretKeyRef{Name: "s", Key: "channel_secret"}, HookAPIVersion: "v2"}
			i.Spec.AccountDomains = []string{"kommo.com", "amocrm.ru"}
		}, ""},
		{"name too long for a label", func(i *kommov1.KommoIntegration) { i.Name = strings.Repeat("a", 64) }, "metadata.name must be at most 63 characters"},
		{"client id not a uuid", func(i *kommov1.KommoIntegration) { i.Spec.ClientID = "my-integration" }, "clientID must be the integration ID from Kommo"},
		{"empty secret name", func(i *kommov1.KommoIntegration) { i.Spec.ClientSecretRef.Name = "" }, "name must be the name of a Secret"},
		{"empty secret key", func(i *kommov1.KommoIntegration) { i.Spec.ClientSecretRef.Key = "" }, "key must be a Secret data key"},
		{"redirect uri relative", func(i *kommov1.KommoIntegration) { i.Spec.RedirectURI = "/kommo/redirect" }, "redirectURI must be an absolute http(s) URL"},
		{"redirect uri other scheme", func(i *kommov1.KommoIntegration) { i.Spec.RedirectURI = "ftp://example.com/x" }, "redirectURI must be an absolute http(s) URL"},
		{"redirect uri fragment", func(i *kommov1.KommoIntegration) { i.Spec.RedirectURI = "https://example.com/x#y" }, "redirectURI must not contain a fragment"},
		{"account domain uppercase", func(i *kommov1.KommoIntegration) { i.Spec.AccountDomains = []string{"Kommo.com"} }, "each account domain must be a lowercase DNS name"},
		{"account domain single label", func(i *kommov1.KommoIntegration) { i.Spec.AccountDomains = []string{"com"} }, "each account domain must be a lowercase DNS name"},
		{"channel id not a uuid", func(i *kommov1.KommoIntegration) {
			i.Spec.Chat = &kommov1.ChatSpec{ChannelID: "whatsapp", SecretRef: kommov1.SecretKeyRef{Name: "s", Key: "k"}}
		}, "channelID must be the channel ID from Kommo"},
		{"chat secret ref empty", func(i *kommov1.KommoIntegration) {
			i.Spec.Chat = &kommov1.ChatSpec{ChannelID: "344a5002-f8ca-454d-af3d-396180102ac7"}
		}, "name must be the name of a Secret"},
		{"hook api version unknown", func(i *kommov1.KommoIntegration) {
			i.Spec.Chat = &kommov1.ChatSpec{ChannelID: "344a5002-f8ca-454d-af3d-396180102ac7", SecretRef: kommov1.SecretKeyRef{Name: "s", Key: "k"}, HookAPIVersion: "v3"}
		}, `Unsupported value: "v3"`},
		{"browser redirect url", func(i *kommov1.KommoIntegration) {
			i.Spec.BrowserRedirectURL = "https://wa-bridge.example.com/kommo/welcome?from=kommo"
		}, ""},
		{"browser redirect url with port and IP host", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "https://127.0.0.1:8443/welcome" }, ""},
		{"browser redirect url plain http", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "http://wa-bridge.example.com/welcome" }, "browserRedirectURL must be an absolute https URL"},
		{"browser redirect url javascript", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "javascript:alert(1)" }, "browserRedirectURL must be an absolute https URL"},
		{"browser redirect url relative", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "/welcome" }, "browserRedirectURL must be an absolute https URL"},
		{"browser redirect url scheme-relative", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "//evil.example.com/" }, "browserRedirectURL must be an absolute https URL"},
		{"browser redirect url without host", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "https:///welcome" }, "browserRedirectURL must be an absolute https URL"},
		{"browser redirect url empty", func(i *kommov1.KommoIntegration) { i.Spec.BrowserRedirectURL = "https://" }, "browserRedirectURL must be an absolute https URL"},
		{"browser redirect url fragment", func(i *kommov1.KommoIntegration) {
			i.Spec.BrowserRedirectURL = "https://wa-bridge.example.com/welcome#done"
		}, "browserRedirectURL must not contain a fragment"},
		{"browser redirect url space", func(i *kommov1.KommoIntegration) {
			i.Spec.BrowserRedirectURL = "https://wa-bridge.example.com/wel come"
		}, "browserRedirectURL must be printable ASCII"},
		{"browser redirect url not ASCII", func(i *kommov1.KommoIntegration) {
			i.Spec.BrowserRedirectURL = "https://wa-bridge.example.com/bienvenido/señor"
		}, "browserRedirectURL must be printable ASCII"},
		{"browser redirect url too long", func(i *kommov1.KommoIntegration) {
			i.Spec.BrowserRedirectURL = "https://wa-bridge.example.com/" + strings.Repeat("a", 2048)
		}, "Too long"},
		{"state key reuses channel secret", func(i *kommov1.KommoIntegration) {
			i.Spec.Chat = &kommov1.ChatSpec{ChannelID: "344a5002-f8ca-454d-af3d-396180102ac7", SecretRef: kommov1.SecretKeyRef{Name: "s", Key: "k"}}
			i.Spec.StateSecretRef = &kommov1.SecretKeyRef{Name: "s", Key: "k"}
		}, "chat.secretRef and stateSecretRef must not point at the same Secret key"},
	}
	ns := env.Namespace(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := validIntegration(ns)
			tc.mutate(obj)
			assertAdmission(t, env.Client.Create(context.Background(), obj, client.DryRunAll), tc.message)
		})
	}
}

func TestInstallationValidation(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*kommov1.KommoInstallation)
		message string
	}{
		{"valid oauth", func(*kommov1.KommoInstallation) {}, ""},
		{"valid long-lived", func(i *kommov1.KommoInstallation) {
			i.Spec.Authorization = nil
			i.Spec.LongLivedTokenSecretRef = &kommov1.SecretKeyRef{Name: "token", Key: "token"}
		}, ""},
		{"valid revocation", func(i *kommov1.KommoInstallation) {
			i.Spec.Revocation = &kommov1.Revocation{ReceivedAt: metav1.NewMicroTime(time.Now()), AccountID: "32720107", ClientUUID: "01d01160-d7a0-4087-b4af-6a1bb83fcd1d", Signature: "56085d36424bc5ba9107165909dd0b11e9d32595b52da36c1efc55fb5a9538d0"}
		}, ""},
		{"account domain with scheme", func(i *kommov1.KommoInstallation) {
			i.Spec.AccountDomain = "https://acme.kommo.com"
			i.Name = "wa-bridge.https---acme.kommo.com"
		}, "accountDomain must be a lowercase DNS name"},
		{"account domain uppercase", func(i *kommov1.KommoInstallation) {
			i.Spec.AccountDomain = "ACME.kommo.com"
		}, "accountDomain must be a lowercase DNS name"},
		{"account domain with port", func(i *kommov1.KommoInstallation) { i.Spec.AccountDomain = "acme.kommo.com:443" }, "accountDomain must be a lowercase DNS name"},
		{"name does not match", func(i *kommov1.KommoInstallation) { i.Name = "acme" }, "metadata.name must be <spec.integrationRef.name>.<spec.accountDomain>"},
		{"authorization and long-lived", func(i *kommov1.KommoInstallation) {
			i.Spec.LongLivedTokenSecretRef = &kommov1.SecretKeyRef{Name: "token", Key: "token"}
		}, "authorization and longLivedTokenSecretRef are exclusive"},
		{"empty integration ref", func(i *kommov1.KommoInstallation) {
			i.Spec.IntegrationRef.Name = ""
			i.Name = ".acme.kommo.com"
		}, "name must be a lowercase DNS subdomain"},
		{"empty code secret ref", func(i *kommov1.KommoInstallation) { i.Spec.Authorization.CodeSecretRef.Name = "" }, "name must be the name of a Secret"},
		{"revocation account id not numeric", func(i *kommov1.KommoInstallation) {
			i.Spec.Revocation = &kommov1.Revocation{ReceivedAt: metav1.NewMicroTime(time.Now()), AccountID: "12a", ClientUUID: "x", Signature: "ab"}
		}, "accountID must be the numeric Kommo account id"},
		{"revocation signature not hex", func(i *kommov1.KommoInstallation) {
			i.Spec.Revocation = &kommov1.Revocation{ReceivedAt: metav1.NewMicroTime(time.Now()), AccountID: "12", ClientUUID: "x", Signature: "zz"}
		}, "signature must be hexadecimal"},
	}
	ns := env.Namespace(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := validInstallation(ns)
			tc.mutate(obj)
			assertAdmission(t, env.Client.Create(context.Background(), obj, client.DryRunAll), tc.message)
		})
	}
}

func TestInstallationImmutableFields(t *testing.T) {
	ctx := context.Background()
	obj := validInstallation(env.Namespace(t))
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field  string
		patch  string
		reject string
	}{
		{"integrationRef", `{"spec":{"integrationRef":{"name":"other"}}}`, "integrationRef is immutable"},
		{"accountDomain", `{"spec":{"accountDomain":"other.kommo.com"}}`, "accountDomain is immutable"},
	} {
		err := env.Client.Patch(ctx, obj.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(tc.patch)))
		assertAdmission(t, err, tc.reject)
	}
}

// GitOps tools show every server-side default as drift: the API server must store optional
// spec fields exactly as sent.
func TestNoDefaultsInjected(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	objs := []client.Object{validIntegration(ns), validInstallation(ns)}
	objs[0].(*kommov1.KommoIntegration).Spec.Chat = &kommov1.ChatSpec{ChannelID: "344a5002-f8ca-454d-af3d-396180102ac7", SecretRef: kommov1.SecretKeyRef{Name: "s", Key: "k"}}
	objs[0].(*kommov1.KommoIntegration).Spec.BrowserRedirectURL = "https://wa-bridge.example.com/welcome?b=2&a=1"
	objs[0].(*kommov1.KommoIntegration).Spec.Sources = []kommov1.Source{{ExternalID: "wa", Name: "WhatsApp"}}
	objs[1].(*kommov1.KommoInstallation).Spec.Sources = []kommov1.Source{{ExternalID: "wa-1", Name: "+1 555 0101"}}
	for _, obj := range objs {
		sent := specOf(t, obj)
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(kommov1.GroupVersion.WithKind(kindOf(obj)))
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
			t.Fatal(err)
		}
		stored, _ := json.Marshal(got.Object["spec"])
		if string(stored) != sent {
			t.Errorf("%s: the API server changed the spec\nsent:   %s\nstored: %s", kindOf(obj), sent, stored)
		}
	}
}

// `kubectl get kommoinstallations` is the operator's main UI: the server-side Table must
// carry the documented columns filled from status.
func TestInstallationTable(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	obj := validInstallation(ns)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	expires := metav1.NewTime(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	// The Account column is the effective host: after a subdomain rename it differs
	// from spec.accountDomain (the name stays).
	obj.Status = kommov1.KommoInstallationStatus{
		AccountDomain:        "acme2.kommo.com",
		ScopeID:              "344a5002-f8ca-454d-af3d-396180102ac7_52e591f7-c98f-4255-8495-827210138c81",
		AccessTokenExpiresAt: &expires,
		Conditions: []metav1.Condition{{
			Type: kommov1.ConditionReady, Status: metav1.ConditionFalse, Reason: kommov1.ReasonReinstallRequired,
			Message: "Kommo revoked the refresh token", LastTransitionTime: metav1.Now(),
		}},
	}
	if err := env.Client.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}

	rc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(env.Config.Host, "/")+
		"/apis/kommo-operator.io/v1alpha1/namespaces/"+ns+"/kommoinstallations?includeObject=None", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := rc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	table := &metav1.Table{}
	if err := json.NewDecoder(resp.Body).Decode(table); err != nil {
		t.Fatal(err)
	}
	var names []string
	wide := map[string]bool{}
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
		wide[c.Name] = c.Priority > 0
	}
	if got, want := strings.Join(names, ","), "Name,Account,Ready,Reason,Scope ID,Expires,Age"; got != want {
		t.Fatalf("columns = %s, want %s", got, want)
	}
	if !wide["Expires"] || wide["Scope ID"] {
		t.Errorf("only Expires should be wide-only: %v", wide)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("rows = %d, want 1", len(table.Rows))
	}
	cells := fmt.Sprint(table.Rows[0].Cells[:5])
	want := fmt.Sprint([]any{obj.Name, "acme2.kommo.com", "False", kommov1.ReasonReinstallRequired, obj.Status.ScopeID})
	if cells != want {
		t.Errorf("cells = %s, want %s", cells, want)
	}
	if got := table.Rows[0].Cells[5]; got != "2030-01-02T03:04:05Z" {
		t.Errorf("Expires cell = %v", got)
	}
}

// `kubectl explain` is where people read the API: every field must be documented.
func TestExplainReadsLikeDocumentation(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.Kubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		want  []string
	}{
		{"kommoinstallation.spec", []string{"integrationRef", "accountDomain", "authorization", "revocation", "longLivedTokenSecretRef", "reinstall"}},
		{"kommoinstallation.status", []string{"scopeID", "refreshTime", "backoffs", "lastAttempt", "lastRevocation", "accountDomain", "whole seconds"}},
		{"kommointegration.spec", []string{"clientID", "redirectURI", "trailing slash", "accountDomains", "stateSecretRef", "tokenSecretTemplate", "browserRedirectURL"}},
		{"kinst.spec.authorization.receivedAt", []string{"sub-second precision"}},
	} {
		// The API server publishes a new CRD's OpenAPI a moment after it is established.
		var out []byte
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; {
			out, err = exec.Command(env.Kubectl(), "--kubeconfig", kubeconfig, "explain", tc.field).CombinedOutput()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond) // poll interval
		}
		if err != nil {
			t.Fatalf("kubectl explain %s: %v\n%s", tc.field, err, out)
		}
		if tc.field == "kommoinstallation.spec" {
			t.Logf("kubectl explain %s:\n%s", tc.field, out)
		}
		text := strings.Join(strings.Fields(string(out)), " ")
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("kubectl explain %s does not mention %q:\n%s", tc.field, w, out)
			}
		}
		if strings.Contains(string(out), "<empty>") {
			t.Errorf("kubectl explain %s has undocumented fields:\n%s", tc.field, out)
		}
	}
}

func assertAdmission(t *testing.T, err error, message string) {
	t.Helper()
	switch {
	case message == "" && err != nil:
		t.Fatalf("rejected: %v", err)
	case message != "" && err == nil:
		t.Fatalf("accepted, want rejection %q", message)
	case message != "" && !apierrors.IsInvalid(err):
		t.Fatalf("want an Invalid error with %q, got %v", message, err)
	case message != "" && !strings.Contains(err.Error(), message):
		t.Fatalf("rejection %q does not say %q", err, message)
	}
}

func specOf(t *testing.T, obj client.Object) string {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	spec, _ := json.Marshal(m["spec"])
	return string(spec)
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *kommov1.KommoIntegration:
		return "KommoIntegration"
	default:
		return "KommoInstallation"
	}
}

func TestSourcesValidation(t *testing.T) {
	src := func(id string) kommov1.Source { return kommov1.Source{ExternalID: id, Name: "Chat " + id} }
	many := func(n int) []kommov1.Source {
		out := make([]kommov1.Source, n)
		for i := range out {
			out[i] = src(fmt.Sprintf("s%d", i))
		}
		return out
	}
	cases := []struct {
		name    string
		sources []kommov1.Source
		message string
	}{
		{"valid", []kommov1.Source{
			{ExternalID: "wa-main", Name: "WhatsApp", Default: true, OriginCode: "kommo.ext.30470678"},
			{ExternalID: "wa +1 555 0100", Name: "Sales line", PipelineName: "Sales"},
			{ExternalID: "tg", Name: "Telegram", PipelineID: 5867030},
		}, ""},
		{"one hundred", many(100), ""},
		{"too many", many(101), "must have at most 100 items"},
		{"external id too long", []kommov1.Source{src(strings.Repeat("x", 37))}, "spec.sources[0].externalID: Too long"},
		{"external id not ascii", []kommov1.Source{src("чат")}, "externalID must be printable ASCII"},
		{"external id control character", []kommov1.Source{src("a\tb")}, "externalID must be printable ASCII"},
		{"name missing", []kommov1.Source{{ExternalID: "a"}}, "spec.sources[0].name"},
		{"pipeline twice", []kommov1.Source{{ExternalID: "a", Name: "a", PipelineID: 1, PipelineName: "Sales"}}, "pipelineID and pipelineName are exclusive"},
		{"pipeline id zero or less", []kommov1.Source{{ExternalID: "a", Name: "a", PipelineID: -1}}, "should be greater than or equal to 1"},
		{"duplicate external id", []kommov1.Source{src("a"), src("a")}, "Duplicate value"},
		{"external ids differ only in case", []kommov1.Source{src("wa"), src("WA")}, "sources must have distinct externalIDs, ignoring case"},
		{"two defaults", []kommov1.Source{{ExternalID: "a", Name: "a", Default: true}, {ExternalID: "b", Name: "b", Default: true}}, "at most one source may be the default"},
		{"origin code all digits", []kommov1.Source{{ExternalID: "a", Name: "a", OriginCode: "30470678"}}, "originCode must be printable ASCII and not all digits"},
		{"origin code quotes", []kommov1.Source{{ExternalID: "a", Name: "a", OriginCode: `""`}}, "originCode must be printable ASCII and not all digits"},
		{"origin code too long", []kommov1.Source{{ExternalID: "a", Name: "a", OriginCode: strings.Repeat("c", 21)}}, "originCode: Too long"},
	}
	ns := env.Namespace(t)
	for _, tc := range cases {
		t.Run("integration/"+tc.name, func(t *testing.T) {
			obj := validIntegration(ns)
			obj.Spec.Sources = tc.sources
			assertAdmission(t, env.Client.Create(context.Background(), obj, client.DryRunAll), tc.message)
		})
		t.Run("installation/"+tc.name, func(t *testing.T) {
			obj := validInstallation(ns)
			obj.Spec.Sources = tc.sources
			assertAdmission(t, env.Client.Create(context.Background(), obj, client.DryRunAll), tc.message)
		})
	}
}

func TestWidgetAndChannelCodeValidation(t *testing.T) {
	chat := func(code string) *kommov1.ChatSpec {
		return &kommov1.ChatSpec{ChannelID: "344a5002-f8ca-454d-af3d-396180102ac7", SecretRef: kommov1.SecretKeyRef{Name: "s", Key: "k"}, Code: code}
	}
	cases := []struct {
		name    string
		mutate  func(*kommov1.KommoIntegration)
		message string
	}{
		{"widget code", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "wa_bridge2" }, ""},
		{"widget code mixed case", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "waBridge" }, ""},
		{"widget code capital first", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "WaBridge" }, "widgetCode must be Kommo's widget code"},
		{"widget code digit first", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "2wa" }, "widgetCode must be Kommo's widget code"},
		{"widget code underscore first", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "_wa" }, "widgetCode must be Kommo's widget code"},
		{"widget code hyphen", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "wa-bridge" }, "widgetCode must be Kommo's widget code"},
		{"widget code non-latin", func(i *kommov1.KommoIntegration) { i.Spec.WidgetCode = "виджет" }, "widgetCode must be Kommo's widget code"},
		{"channel code", func(i *kommov1.KommoIntegration) { i.Spec.Chat = chat("kommo.ext.30470678") }, ""},
		{"channel code all digits", func(i *kommov1.KommoIntegration) { i.Spec.Chat = chat("30470678") }, "code must be printable ASCII and not all digits"},
		{"channel code too long", func(i *kommov1.KommoIntegration) { i.Spec.Chat = chat(strings.Repeat("c", 21)) }, "spec.chat.code: Too long"},
	}
	ns := env.Namespace(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := validIntegration(ns)
			tc.mutate(obj)
			assertAdmission(t, env.Client.Create(context.Background(), obj, client.DryRunAll), tc.message)
		})
	}
}

// The integration's backend writes spec.sources with its own field manager through
// server-side apply; each backend replica (or each phone number) owning its items must
// never remove another's, and the webhook's merge patches of spec.authorization must
// leave them alone.
func TestInstallationSourcesMergePerItem(t *testing.T) {
	ctx := context.Background()
	obj := validInstallation(env.Namespace(t))
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	apply := func(manager string, sources ...kommov1.Source) {
		t.Helper()
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": kommov1.GroupVersion.String(), "kind": "KommoInstallation",
			"metadata": map[string]any{"name": obj.Name, "namespace": obj.Namespace},
		}}
		var items []any
		for _, s := range sources {
			items = append(items, map[string]any{"externalID": s.ExternalID, "name": s.Name})
		}
		u.Object["spec"] = map[string]any{"sources": items}
		if err := env.Client.Patch(ctx, u, client.Apply, client.FieldOwner(manager)); err != nil {
			t.Fatalf("apply as %s: %v", manager, err)
		}
	}
	apply("backend-a", kommov1.Source{ExternalID: "wa-1", Name: "+1 555 0101"})
	apply("backend-b", kommov1.Source{ExternalID: "wa-2", Name: "+1 555 0102"})
	apply("backend-a", kommov1.Source{ExternalID: "wa-1", Name: "+1 555 0101 (sales)"})
	webhook := []byte(`{"spec":{"authorization":{"state":"s"}}}`)
	if err := env.Client.Patch(ctx, obj.DeepCopy(), client.RawPatch("application/merge-patch+json", webhook)); err != nil {
		t.Fatal(err)
	}

	got := &kommov1.KommoInstallation{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, s := range got.Spec.Sources {
		names[s.ExternalID] = s.Name
	}
	if len(names) != 2 || names["wa-1"] != "+1 555 0101 (sales)" || names["wa-2"] != "+1 555 0102" {
		t.Fatalf("sources after two managers applied: %v", got.Spec.Sources)
	}

	// A manager that applies an empty list gives up only its own items.
	apply("backend-a")
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Sources) != 1 || got.Spec.Sources[0].ExternalID != "wa-2" {
		t.Fatalf("after backend-a dropped its source: %v", got.Spec.Sources)
	}
}
