package kommo_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
)

func jwtWith(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".c2lnbmF0dXJl"
}

func TestParseClaims(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		want    kommo.Claims
		wantErr bool
	}{
		{
			name:  "kommo shape",
			token: jwtWith(`{"aud":"client-1","jti":"x","iat":1,"exp":1767225600,"account_id":32720107,"base_domain":"kommo.com","api_domain":"api-c.kommo.com"}`),
			want:  kommo.Claims{AccountID: 32720107, BaseDomain: "kommo.com", APIDomain: "api-c.kommo.com", Audience: "client-1", ExpiresAt: time.Unix(1767225600, 0).UTC()},
		},
		{
			name:  "aud array, string id, fractional exp",
			token: jwtWith(`{"aud":["client-2","x"],"account_id":"42","exp":1767225600.5}`),
			want:  kommo.Claims{AccountID: 42, Audience: "client-2", ExpiresAt: time.Unix(1767225600, 5e8).UTC()},
		},
		{name: "no claims", token: jwtWith(`{}`)},
		{name: "padded payload", token: strings.Replace(jwtWith(`{"account_id":7}`), ".c2ln", "=.c2ln", 1), want: kommo.Claims{AccountID: 7}},
		{name: "empty", token: "", wantErr: true},
		{name: "two parts", token: "a.b", wantErr: true},
		{name: "four parts", token: jwtWith(`{}`) + ".x", wantErr: true},
		{name: "bad base64", token: "a.!!!.c", wantErr: true},
		{name: "not json", token: jwtWith(`nope`), wantErr: true},
		{name: "bad exp", token: jwtWith(`{"exp":"soon"}`), wantErr: true},
		{name: "negative exp", token: jwtWith(`{"exp":-5}`), wantErr: true},
		{name: "bad aud", token: jwtWith(`{"aud":5}`), wantErr: true},
		{name: "bad account id", token: jwtWith(`{"account_id":"abc"}`), wantErr: true},
		{name: "huge", token: jwtWith(`{"x":"` + strings.Repeat("a", 20000) + `"}`), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kommo.ParseClaims(tc.token)
			if tc.wantErr {
				if !errors.Is(err, kommo.ErrMalformedToken) {
					t.Fatalf("got %+v, %v; want ErrMalformedToken", got, err)
				}
				if tc.token != "" && strings.Contains(err.Error(), tc.token) {
					t.Fatal("error contains the token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Fatalf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
}
