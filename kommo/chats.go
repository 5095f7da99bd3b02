package kommo

import (
	"context"
	"fmt"
	"net/http"
)

// Channel is a Chats API channel registered with Kommo by hand.
type Channel struct {
	ID     string // channel id (UUID)
	Secret string // channel secret (40 hex chars), the HMAC key
}

// String redacts the secret, so a Channel is safe to print by accident.
func (ch Channel) String() string { return fmt.Sprintf("{ID:%s Secret:REDACTED}", ch.ID) }

// GoString redacts the secret for %#v.
func (ch Channel) GoString() string {
	return fmt.Sprintf("kommo.Channel{ID:%q, Secret:\"REDACTED\"}", ch.ID)
}

// ConnectRequest is what Connect asks for.
type ConnectRequest struct {
	AmojoID        string // the account's amojo_id, from Account
	Title          string
	HookAPIVersion string // "" means "v2" (omitting it would select the deprecated v1)
}

// Connection is Kommo's answer to Connect.
type Connection struct {
	ScopeID        string // store it: Kommo's id of this channel in this account
	AmojoID        string
	Title          string
	HookAPIVersion string
}

// DefaultHookAPIVersion is sent when ConnectRequest.HookAPIVersion is empty.
const DefaultHookAPIVersion = "v2"

// Field order matters only for reproducing Kommo's published vectors; any order verifies.
type connectBody struct {
	AccountID      string `json:"account_id"`
	Title          string `json:"title"`
	HookAPIVersion string `json:"hook_api_version"`
}

type disconnectBody struct {
	AccountID string `json:"account_id"`
}

type connectResponse struct {
	AccountID      string `json:"account_id"`
	ScopeID        string `json:"scope_id"`
	Title          string `json:"title"`
	HookAPIVersion string `json:"hook_api_version"`
}

// Connect connects the channel to the account with a signed
// POST https://{AmojoHost(accountHost)}/v2/origin/custom/{ch.ID}/connect. Repeating it
// after every install is expected.
func (c *Client) Connect(ctx context.Context, accountHost string, ch Channel, req ConnectRequest) (*Connection, error) {
	if req.HookAPIVersion == "" {
		req.HookAPIVersion = DefaultHookAPIVersion
	}
	data, host, err := c.chat(ctx, opConnect, accountHost, ch, http.MethodPost, req.AmojoID,
		jsonBody(connectBody{AccountID: req.AmojoID, Title: req.Title, HookAPIVersion: req.HookAPIVersion}))
	if err != nil {
		return nil, err
	}
	var r connectResponse
	if err := decode(opConnect, host, http.StatusOK, data, &r); err != nil {
		return nil, err
	}
	if r.ScopeID == "" {
		return nil, malformed(opConnect, host, http.StatusOK)
	}
	conn := &Connection{ScopeID: r.ScopeID, AmojoID: r.AccountID, Title: r.Title, HookAPIVersion: r.HookAPIVersion}
	if conn.AmojoID == "" {
		conn.AmojoID = req.AmojoID
	}
	return conn, nil
}

// Disconnect disconnects the channel from the account with a signed
// DELETE https://{AmojoHost(accountHost)}/v2/origin/custom/{ch.ID}/disconnect.
func (c *Client) Disconnect(ctx context.Context, accountHost string, ch Channel, amojoID string) error {
	_, _, err := c.chat(ctx, opDisconnect, accountHost, ch, http.MethodDelete, amojoID,
		jsonBody(disconnectBody{AccountID: amojoID}))
	return err
}

// chat sends one signed Chats API request and returns the 2xx body and the amojo host.
func (c *Client) chat(ctx context.Context, op, accountHost string, ch Channel, method, amojoID string, body []byte) ([]byte, string, error) {
	host, err := AmojoHost(accountHost)
	if err != nil {
		return nil, "", &Error{Op: op, Host: safeHost(accountHost), Kind: KindBadRequest, cause: "invalid account host"}
	}
	switch {
	case !validChannelID(ch.ID):
		return nil, host, &Error{Op: op, Host: host, Kind: KindBadRequest, cause: "invalid channel id"}
	case ch.Secret == "":
		return nil, host, &Error{Op: op, Host: host, Kind: KindBadRequest, cause: "missing channel secret"}
	case amojoID == "":
		return nil, host, &Error{Op: op, Host: host, Kind: KindBadRequest, cause: "missing amojo id"}
	}
	path := "/v2/origin/custom/" + ch.ID + "/" + op
	date := c.now().UTC().Format(ChatDateLayout)
	md5hex, sig := SignChatRequest(ch.Secret, method, path, body, date)
	data, err := c.do(ctx, call{
		api: apiChats, op: op, host: host, method: method, path: path,
		header: http.Header{
			"Content-Type": {chatContentType},
			"Content-Md5":  {md5hex},
			"Date":         {date},
			"X-Signature":  {sig},
		},
		body: body,
	})
	return data, host, err
}

// validChannelID keeps the id a single safe path segment (Kommo's are UUIDs).
func validChannelID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
