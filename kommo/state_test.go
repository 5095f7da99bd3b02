package kommo_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo"
)

func TestStateFormat(t *testing.T) {
	key := []byte("state-key-0123456789")
	exp := time.Unix(1767225600, 0)
	got, err := kommo.MintState(key, exp, "n0nce_-X")
	if err != nil {
		t.Fatal(err)
	}
	// Recomputed from the documented format, independently of the package.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("v1.1767225600.n0nce_-X"))
	want := "v1.1767225600.n0nce_-X." + hex.EncodeToString(mac.Sum(nil))
	if got != want {
		t.Fatalf("MintState = %q, want %q", got, want)
	}
}

func TestVerifyState(t *testing.T) {
	key := []byte("state-key-0123456789")
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	valid, err := kommo.MintState(key, now.Add(10*time.Minute), "abc")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	tests := []struct {
		name  string
		key   []byte
		state string
		now   time.Time
		want  error
	}{
		{"valid", key, valid, now, nil},
		{"valid uppercase mac", key, strings.Join(parts[:3], ".") + "." + strings.ToUpper(parts[3]), now, nil},
		{"valid one second before expiry", key, valid, now.Add(10*time.Minute - time.Second), nil},
		{"expired at expiry", key, valid, now.Add(10 * time.Minute), kommo.ErrStateExpired},
		{"expired later", key, valid, now.Add(time.Hour), kommo.ErrStateExpired},
		{"other key", []byte("other"), valid, now, kommo.ErrStateSignature},
		{"empty key", nil, valid, now, kommo.ErrStateKey},
		{"expiry changed", key, "v1.9999999999." + parts[2] + "." + parts[3], now, kommo.ErrStateSignature},
		{"nonce changed", key, "v1." + parts[1] + ".abd." + parts[3], now, kommo.ErrStateSignature},
		{"mac flipped", key, strings.Join(parts[:3], ".") + "." + flipHex(parts[3]), now, kommo.ErrStateSignature},
		{"empty", key, "", now, kommo.ErrStateMalformed},
		{"v2", key, "v2" + valid[2:], now, kommo.ErrStateMalformed},
		{"three parts", key, strings.Join(parts[:3], "."), now, kommo.ErrStateMalformed},
		{"five parts", key, valid + ".x", now, kommo.ErrStateMalformed},
		{"negative expiry", key, "v1.-1.abc." + parts[3], now, kommo.ErrStateMalformed},
		{"signed expiry", key, "v1.+" + parts[1] + ".abc." + parts[3], now, kommo.ErrStateMalformed},
		{"bad nonce", key, "v1." + parts[1] + ".a/b." + parts[3], now, kommo.ErrStateMalformed},
		{"empty nonce", key, "v1." + parts[1] + ".." + parts[3], now, kommo.ErrStateMalformed},
		{"short mac", key, strings.Join(parts[:3], ".") + "." + parts[3][:10], now, kommo.ErrStateMalformed},
		{"huge", key, valid + strings.Repeat("a", 300), now, kommo.ErrStateMalformed},
	}
	for _, tc := range tests {
		if err := kommo.VerifyState(tc.key, tc.state, tc.now); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: VerifyState = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func flipHex(s string) string {
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

func TestMintStateRejects(t *testing.T) {
	exp := time.Unix(1767225600, 0)
	for _, nonce := range []string{"", "a.b", "a b", strings.Repeat("a", 65), "é"} {
		if s, err := kommo.MintState([]byte("k"), exp, nonce); !errors.Is(err, kommo.ErrStateMalformed) {
			t.Errorf("MintState nonce %q = %q, %v", nonce, s, err)
		}
	}
	if _, err := kommo.MintState(nil, exp, "a"); !errors.Is(err, kommo.ErrStateKey) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := kommo.MintState([]byte("k"), time.Unix(0, 0), "a"); err == nil {
		t.Error("expiry at the epoch accepted")
	}
	if s, err := kommo.MintState([]byte("k"), exp, strings.Repeat("a", 64)); err != nil || len(s) > 256 {
		t.Errorf("longest nonce: %q, %v", s, err)
	}
}
