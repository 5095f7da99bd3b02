package kommo

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ChatDateLayout is the Date header format the Chats API signs (RFC 2822, "+0000" zone).
const ChatDateLayout = time.RFC1123Z

// chatContentType is both sent and signed; the signature breaks if they differ.
const chatContentType = "application/json"

// ChatSignatureWindow is how long a Chats API signature stays valid around its Date.
const ChatSignatureWindow = 15 * time.Minute

// ErrChatSignature is wrapped by every VerifyChatRequest error.
var ErrChatSignature = errors.New("kommo: invalid chat request signature")

// SignChatRequest returns the Content-MD5 and X-Signature headers of a Chats API request:
// Content-MD5 is the lowercase hex MD5 of body; X-Signature the lowercase hex HMAC-SHA1,
// keyed with the channel secret as ASCII, of
// METHOD "\n" Content-MD5 "\n" "application/json" "\n" date "\n" path.
// method, path (no scheme, host or query) and date are used verbatim: the caller sends
// exactly these strings.
func SignChatRequest(secret, method, path string, body []byte, date string) (contentMD5, signature string) {
	sum := md5.Sum(body)
	contentMD5 = hex.EncodeToString(sum[:])
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(method + "\n" + contentMD5 + "\n" + chatContentType + "\n" + date + "\n" + path))
	return contentMD5, hex.EncodeToString(mac.Sum(nil))
}

// VerifyChatRequest checks a received Chats API request the way Kommo does: Content-Type
// exactly application/json, Content-MD5 the lowercase MD5 of body, Date (ChatDateLayout)
// within ±window of now, and X-Signature, compared in constant time. Errors wrap
// ErrChatSignature and never include header values.
func VerifyChatRequest(secret, method, path string, body []byte, h http.Header, now time.Time, window time.Duration) error {
	if h.Get("Content-Type") != chatContentType {
		return fmt.Errorf("%w: Content-Type is not %s", ErrChatSignature, chatContentType)
	}
	date := h.Get("Date")
	t, err := time.Parse(ChatDateLayout, date)
	if err != nil {
		return fmt.Errorf("%w: Date is not RFC 2822", ErrChatSignature)
	}
	if d := now.Sub(t); d > window || d < -window {
		return fmt.Errorf("%w: Date outside the validity window", ErrChatSignature)
	}
	wantMD5, wantSig := SignChatRequest(secret, method, path, body, date)
	if subtle.ConstantTimeCompare([]byte(h.Get("Content-MD5")), []byte(wantMD5)) != 1 {
		return fmt.Errorf("%w: Content-MD5 does not match the body", ErrChatSignature)
	}
	if !hmac.Equal([]byte(h.Get("X-Signature")), []byte(wantSig)) {
		return fmt.Errorf("%w: X-Signature mismatch", ErrChatSignature)
	}
	return nil
}
