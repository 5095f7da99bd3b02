package kommo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Errors of VerifyState and MintState.
var (
	ErrStateMalformed = errors.New("kommo: state is malformed")
	ErrStateExpired   = errors.New("kommo: state has expired")
	ErrStateSignature = errors.New("kommo: state signature is invalid")
	ErrStateKey       = errors.New("kommo: state key is empty")
)

const (
	stateVersion   = "v1"
	maxNonceLen    = 64
	maxStateLength = 256
)

// MintState returns a signed state for the button-on-site install flow, in the format
// described in the package documentation. nonce is 1..64 characters of [A-Za-z0-9_-].
func MintState(key []byte, expires time.Time, nonce string) (string, error) {
	if len(key) == 0 {
		return "", ErrStateKey
	}
	if !validNonce(nonce) || expires.Unix() <= 0 {
		return "", ErrStateMalformed
	}
	msg := stateVersion + "." + strconv.FormatInt(expires.Unix(), 10) + "." + nonce
	return msg + "." + stateMAC(key, msg), nil
}

// VerifyState checks a state minted by MintState (or by the integration's own site):
// format, then signature in constant time, then expiry against now.
func VerifyState(key []byte, state string, now time.Time) error {
	if len(key) == 0 {
		return ErrStateKey
	}
	if len(state) > maxStateLength {
		return ErrStateMalformed
	}
	parts := strings.Split(state, ".")
	if len(parts) != 4 || parts[0] != stateVersion || !validNonce(parts[2]) {
		return ErrStateMalformed
	}
	if !isDigits(parts[1]) || len(parts[1]) > 18 {
		return ErrStateMalformed
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return ErrStateMalformed
	}
	got, err := hex.DecodeString(parts[3])
	if err != nil || len(got) != sha256.Size {
		return ErrStateMalformed
	}
	want, _ := hex.DecodeString(stateMAC(key, strings.Join(parts[:3], ".")))
	if !hmac.Equal(got, want) {
		return ErrStateSignature
	}
	if !now.Before(time.Unix(exp, 0)) {
		return ErrStateExpired
	}
	return nil
}

func stateMAC(key []byte, msg string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil))
}

func validNonce(n string) bool {
	if n == "" || len(n) > maxNonceLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
