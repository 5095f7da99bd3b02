package kommo_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
)

// Kommo's published worked example (KOMMO_API.md).
const (
	vecSecret    = "f2d7f8704eff95087ed45b23ba99c0b5aac8278e"
	vecChannel   = "344a5002-f8ca-454d-af3d-396180102ac7"
	vecAmojoID   = "52e591f7-c98f-4255-8495-827210138c81"
	vecScopeID   = vecChannel + "_" + vecAmojoID
	vecConnBody  = `{"account_id":"52e591f7-c98f-4255-8495-827210138c81","title":"ChatsIntegration","hook_api_version":"v2"}`
	vecConnDate  = "Wed, 15 Dec 2021 23:12:55 +0000"
	vecConnMD5   = "2fbcb3c652b61e24e004daddfc73d0ce"
	vecConnSig   = "81211856ce0c5095f3e1a90c0a38dc9d736cfd55"
	vecDiscBody  = `{"account_id":"52e591f7-c98f-4255-8495-827210138c81"}`
	vecDiscDate  = "Wed, 15 Dec 2021 23:59:28 +0000"
	vecDiscMD5   = "271fa2e4fb0ff84a3ef9689027bd1f38"
	vecDiscSig   = "e1678e3b6aa674b5127f4feb448e6200ce0bfc72"
	vecConnPath  = "/v2/origin/custom/" + vecChannel + "/connect"
	vecDiscPath  = "/v2/origin/custom/" + vecChannel + "/disconnect"
	vecRevSecret = "test_client_secret"
	vecRevClient = "01d01160-d7a0-4087-b4af-6a1bb83fcd1d"
	vecRevAcct   = "32720107"
	vecRevSig    = "56085d36424bc5ba9107165909dd0b11e9d32595b52da36c1efc55fb5a9538d0"
)

func TestSignChatRequestVectors(t *testing.T) {
	tests := []struct {
		name, method, path, body, date, md5, sig string
	}{
		{"connect", "POST", vecConnPath, vecConnBody, vecConnDate, vecConnMD5, vecConnSig},
		{"disconnect", "DELETE", vecDiscPath, vecDiscBody, vecDiscDate, vecDiscMD5, vecDiscSig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md5, sig := kommo.SignChatRequest(vecSecret, tc.method, tc.path, []byte(tc.body), tc.date)
			if md5 != tc.md5 || sig != tc.sig {
				t.Fatalf("got Content-MD5 %s X-Signature %s; want %s %s", md5, sig, tc.md5, tc.sig)
			}
			// The same request passes verification at its own date.
			now, err := time.Parse(kommo.ChatDateLayout, tc.date)
			if err != nil {
				t.Fatal(err)
			}
			h := chatHeader(tc.md5, tc.date, tc.sig)
			if err := kommo.VerifyChatRequest(vecSecret, tc.method, tc.path, []byte(tc.body), h, now.Add(14*time.Minute), kommo.ChatSignatureWindow); err != nil {
				t.Fatalf("VerifyChatRequest: %v", err)
			}
		})
	}
}

func chatHeader(md5, date, sig string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-MD5", md5)
	h.Set("Date", date)
	h.Set("X-Signature", sig)
	return h
}

func TestVerifyChatRequestRejects(t *testing.T) {
	body := []byte(vecConnBody)
	now, _ := time.Parse(kommo.ChatDateLayout, vecConnDate)
	tests := []struct {
		name   string
		mutate func(h http.Header)
		secret string
		method string
		path   string
		body   []byte
		now    time.Time
	}{
		{name: "content type with charset", mutate: func(h http.Header) { h.Set("Content-Type", "application/json; charset=utf-8") }},
		{name: "no content type", mutate: func(h http.Header) { h.Del("Content-Type") }},
		{name: "uppercase md5", mutate: func(h http.Header) { h.Set("Content-MD5", strings.ToUpper(vecConnMD5)) }},
		{name: "missing md5", mutate: func(h http.Header) { h.Del("Content-MD5") }},
		{name: "missing signature", mutate: func(h http.Header) { h.Del("X-Signature") }},
		{name: "signature of other date", mutate: func(h http.Header) { h.Set("Date", "Wed, 15 Dec 2021 23:12:56 +0000") }},
		{name: "date not RFC 2822", mutate: func(h http.Header) { h.Set("Date", "2021-12-15T23:12:55Z") }},
		{name: "missing date", mutate: func(h http.Header) { h.Del("Date") }},
		{name: "date too old", now: now.Add(15*time.Minute + time.Second)},
		{name: "date in the future", now: now.Add(-15*time.Minute - time.Second)},
		{name: "wrong secret", secret: strings.Repeat("0", 40)},
		{name: "wrong method", method: "PUT"},
		{name: "path with query", path: vecConnPath + "?x=1"},
		{name: "other body", body: []byte(strings.Replace(vecConnBody, "v2", "v1", 1))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := chatHeader(vecConnMD5, vecConnDate, vecConnSig)
			if tc.mutate != nil {
				tc.mutate(h)
			}
			secret, method, path, b, at := vecSecret, "POST", vecConnPath, body, now
			if tc.secret != "" {
				secret = tc.secret
			}
			if tc.method != "" {
				method = tc.method
			}
			if tc.path != "" {
				path = tc.path
			}
			if tc.body != nil {
				b = tc.body
			}
			if !tc.now.IsZero() {
				at = tc.now
			}
			err := kommo.VerifyChatRequest(secret, method, path, b, h, at, kommo.ChatSignatureWindow)
			if !errors.Is(err, kommo.ErrChatSignature) {
				t.Fatalf("got %v, want ErrChatSignature", err)
			}
			for _, s := range []string{vecSecret, vecConnSig, vecConnMD5, vecConnDate} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q contains %q", err, s)
				}
			}
		})
	}
}

func FuzzSignChatRequest(f *testing.F) {
	f.Add(vecSecret, "POST", vecConnPath, []byte(vecConnBody), uint8(3))
	f.Add(vecSecret, "DELETE", vecDiscPath, []byte(vecDiscBody), uint8(0))
	f.Add("s", "GET", "/", []byte{0}, uint8(200))
	now := time.Date(2021, 12, 15, 23, 12, 55, 0, time.UTC)
	date := now.Format(kommo.ChatDateLayout)
	f.Fuzz(func(t *testing.T, secret, method, path string, body []byte, flip uint8) {
		md5, sig := kommo.SignChatRequest(secret, method, path, body, date)
		if len(md5) != 32 || len(sig) != 40 || strings.ToLower(md5+sig) != md5+sig {
			t.Fatalf("not lowercase hex of the right size: %q %q", md5, sig)
		}
		h := chatHeader(md5, date, sig)
		if err := kommo.VerifyChatRequest(secret, method, path, body, h, now, kommo.ChatSignatureWindow); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if len(body) == 0 {
			return
		}
		tampered := append([]byte(nil), body...)
		tampered[int(flip)%len(tampered)] ^= 0x01
		if err := kommo.VerifyChatRequest(secret, method, path, tampered, h, now, kommo.ChatSignatureWindow); err == nil {
			t.Fatal("a flipped body byte still verifies")
		}
	})
}

func TestRevokeSignature(t *testing.T) {
	if got := kommo.RevokeSignature(vecRevSecret, vecRevClient, vecRevAcct); got != vecRevSig {
		t.Fatalf("RevokeSignature = %s, want %s", got, vecRevSig)
	}
	tests := []struct {
		name, secret, client, account, sig string
		want                               bool
	}{
		{"vector", vecRevSecret, vecRevClient, vecRevAcct, vecRevSig, true},
		{"uppercase hex", vecRevSecret, vecRevClient, vecRevAcct, strings.ToUpper(vecRevSig), true},
		{"wrong secret", "other", vecRevClient, vecRevAcct, vecRevSig, false},
		{"other account", vecRevSecret, vecRevClient, "32720108", vecRevSig, false},
		{"other client", vecRevSecret, "x" + vecRevClient[1:], vecRevAcct, vecRevSig, false},
		{"truncated", vecRevSecret, vecRevClient, vecRevAcct, vecRevSig[:62], false},
		{"not hex", vecRevSecret, vecRevClient, vecRevAcct, "zz" + vecRevSig[2:], false},
		{"empty", vecRevSecret, vecRevClient, vecRevAcct, "", false},
		// The separator is part of the message: shifting it must not verify.
		{"separator moved", vecRevSecret, vecRevClient + "|3272", "0107", vecRevSig, false},
	}
	for _, tc := range tests {
		if got := kommo.VerifyRevokeSignature(tc.secret, tc.client, tc.account, tc.sig); got != tc.want {
			t.Errorf("%s: VerifyRevokeSignature = %v, want %v", tc.name, got, tc.want)
		}
	}
}
