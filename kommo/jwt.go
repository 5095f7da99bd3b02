package kommo

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// ErrMalformedToken is returned by ParseClaims; it never includes the token.
var ErrMalformedToken = errors.New("kommo: access token is not a readable JWT")

// Claims are the claims of a Kommo access token, read WITHOUT verifying the signature:
// good for routing and expiry maths, never for authorisation.
type Claims struct {
	AccountID  int64
	BaseDomain string // e.g. "kommo.com"
	APIDomain  string // e.g. "api-c.kommo.com", where CurrentSubdomain is asked
	Audience   string // the client id
	ExpiresAt  time.Time
}

type rawClaims struct {
	AccountID  flexInt         `json:"account_id"`
	BaseDomain string          `json:"base_domain"`
	APIDomain  string          `json:"api_domain"`
	Audience   json.RawMessage `json:"aud"`
	Exp        json.Number     `json:"exp"`
}

// maxTokenLen bounds the work done on a token; Kommo's are around 1 KiB.
const maxTokenLen = 16 << 10

// ParseClaims reads the claims of a JWT access token (such as a long-lived token) without
// verifying it. A missing claim is left zero.
func ParseClaims(accessToken string) (*Claims, error) {
	if len(accessToken) > maxTokenLen {
		return nil, ErrMalformedToken
	}
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 || parts[1] == "" {
		return nil, ErrMalformedToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, ErrMalformedToken
	}
	var r rawClaims
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, ErrMalformedToken
	}
	c := &Claims{AccountID: int64(r.AccountID), BaseDomain: r.BaseDomain, APIDomain: r.APIDomain}
	// aud is a string or an array of strings (RFC 7519).
	if len(r.Audience) > 0 && string(r.Audience) != "null" {
		var one string
		var many []string
		switch {
		case json.Unmarshal(r.Audience, &one) == nil:
			c.Audience = one
		case json.Unmarshal(r.Audience, &many) == nil:
			if len(many) > 0 {
				c.Audience = many[0]
			}
		default:
			return nil, ErrMalformedToken
		}
	}
	if r.Exp != "" {
		f, err := r.Exp.Float64()
		if err != nil || f < 0 || f > math.MaxInt32*4 {
			return nil, ErrMalformedToken
		}
		sec, frac := math.Modf(f)
		c.ExpiresAt = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	return c, nil
}
