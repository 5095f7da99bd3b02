package plugin

import kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"

// advice says what to do about a condition reason (api/v1alpha1/wellknown.go). Reasons that
// need no one are absent.
var advice = map[string]string{
	kommov1.ReasonReconciling:           "Wait a few seconds: the controller is working on it.",
	kommov1.ReasonPaused:                "Remove the kommo-operator.io/paused annotation: kubectl kommo resume.",
	kommov1.ReasonSecretNotFound:        "Create the Secret or key the message names; it is looked for again every minute.",
	kommov1.ReasonIntegrationNotFound:   "Create the KommoIntegration (its name must match the Redirect URI's path).",
	kommov1.ReasonIntegrationNotReady:   "Fix the KommoIntegration: a Secret or key it references is missing (kubectl get kint).",
	kommov1.ReasonAwaitingAuthorization: "Install the integration in the Kommo account (kubectl kommo consent-url prints a link for site installs).",
	kommov1.ReasonRefreshFailing:        "Nothing yet: the refresh is retried while the token is valid. Look at the events; kubectl kommo refresh retries now.",
	kommov1.ReasonAccountNotFound:       "Check the account host; the account installs again.",
	kommov1.ReasonInvalidState:          "Check your site's state signing (README: the state format); the account installs again.",
	kommov1.ReasonCodeNotFound:          "The code Secret is gone: the account installs again.",
	kommov1.ReasonInvalidCode:           "Kommo rejected the code (older than 20 minutes, or used): the account installs again.",
	kommov1.ReasonInvalidClient:         "Fix the client secret or spec.redirectURI of the KommoIntegration (no trailing slash unless Kommo has one).",
	kommov1.ReasonReinstallRequired:     "Kommo revoked the grant: the account installs the integration again.",
	kommov1.ReasonRevoked:               "The account disabled the integration; a new install re-enables it.",
	kommov1.ReasonTokenExpired:          "Put a new long-lived token in the Secret spec.longLivedTokenSecretRef names.",
	kommov1.ReasonInvalidToken:          "The long-lived token is not a Kommo access token: put the right one in its Secret.",
	kommov1.ReasonForbiddenDomain:       "Add the account's domain suffix to the KommoIntegration's spec.accountDomains.",
	kommov1.ReasonConnectPending:        "Wait: the channel connects once tokens and the account's amojo_id are known.",
	kommov1.ReasonInvalidSignature:      "The Chats API rejected the signature: check the channel secret (spec.chat.secretRef).",
	kommov1.ReasonChannelNotFound:       "The Chats API does not know the channel: check spec.chat.channelID.",
	kommov1.ReasonDisconnected:          "The channel was disconnected by a revocation; a new install reconnects it.",
	kommov1.ReasonRateLimited:           "Nothing: the controller waits as Kommo says. Lower --kommo-qps if it is frequent.",
	kommov1.ReasonBlocked:               "Kommo blocks the cluster's egress IP (HTML 403): check it with Kommo; the controller backs off.",
	kommov1.ReasonKommoUnavailable:      "Nothing: Kommo failed transiently and the controller retries with backoff.",
	kommov1.ReasonKommoRejected:         "Kommo rejected a request; the events say which. Retried with backoff.",
}
