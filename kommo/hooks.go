package kommo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// RevokeSignature computes the signature of Kommo's "access revoked" hook: lowercase hex
// HMAC-SHA256, keyed with the client secret, of clientUUID + "|" + accountID.
func RevokeSignature(clientSecret, clientUUID, accountID string) string {
	mac := hmac.New(sha256.New, []byte(clientSecret))
	mac.Write([]byte(clientUUID + "|" + accountID))
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifyRevokeSignature checks a received revoke hook signature in constant time; hex
// of either case is accepted. The caller must also check clientUUID equals its client id.
func VerifyRevokeSignature(clientSecret, clientUUID, accountID, signature string) bool {
	got, err := hex.DecodeString(signature)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(clientSecret))
	mac.Write([]byte(clientUUID + "|" + accountID))
	return hmac.Equal(got, mac.Sum(nil))
}
