package v1alpha1

// Labels, annotations, finalizers and Secret types the operator reads and writes. They are
// part of the public contract: users select on them and mount the Secrets they mark.
const (
	// LabelIntegration names the KommoIntegration an installation or Secret belongs to.
	LabelIntegration = "kommo-operator.io/integration"
	// LabelAccountID carries the numeric Kommo account id once known; the webhook finds the
	// installation of a revoke hook by it.
	LabelAccountID = "kommo-operator.io/account-id"
	// LabelManagedBy marks Secrets the operator owns; its Secret cache selects on it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on the operator's Secrets.
	ManagedByValue = "kommo-operator"

	// AnnotationRefreshRequestedAt forces a token refresh when set to a time (RFC 3339)
	// later than status.lastRefreshTime, e.g. `kubectl annotate kinst X
	// kommo-operator.io/refresh-requested-at=$(date -u +%FT%TZ)`.
	AnnotationRefreshRequestedAt = "kommo-operator.io/refresh-requested-at"
	// AnnotationPaused set to "true" stops the controller from acting on an installation or
	// on every installation of an integration, e.g. during a migration.
	AnnotationPaused = "kommo-operator.io/paused"

	// FinalizerChannel is held while a chat channel is connected, so that deleting the
	// installation disconnects it first.
	FinalizerChannel = "kommo-operator.io/channel"

	// SecretTypeToken is the type of the token Secret the integration's backend mounts.
	SecretTypeToken = "kommo-operator.io/token"
	// SecretTypeAuthorizationCode is the type of the short-lived Secret holding a code.
	SecretTypeAuthorizationCode = "kommo-operator.io/authorization-code"
	// AuthorizationCodeKey is the key of the code in an authorization-code Secret.
	AuthorizationCodeKey = "code"
	// CodeSecretPrefix begins the name of every authorization-code Secret.
	CodeSecretPrefix = "kommo-code-"
)

// Keys of the token Secret.
const (
	TokenKeyAccessToken   = "access_token"
	TokenKeyRefreshToken  = "refresh_token"
	TokenKeyExpiresAt     = "expires_at"
	TokenKeyAccountDomain = "account_domain"
	TokenKeyAccountID     = "account_id"
	TokenKeyAmojoID       = "amojo_id"
	TokenKeyScopeID       = "scope_id"
)

// Condition types.
const (
	// ConditionReady summarises the object: True when it is fully working.
	ConditionReady = "Ready"
	// ConditionAuthorized is True while the installation holds a working grant: an
	// access token that has not expired and that Kommo has not declared revoked.
	ConditionAuthorized = "Authorized"
	// ConditionInstalled tells whether the latest install received (the attempt) was
	// exchanged for tokens. A failed attempt leaves a working grant alone: Authorized and
	// Ready stay True, and this condition says what went wrong.
	ConditionInstalled = "Installed"
	// ConditionChannelConnected is True while the chat channel is connected; it is absent
	// when the integration has no chat.
	ConditionChannelConnected = "ChannelConnected"
	// ConditionSourcesSynced is True when every declared source exists in Kommo as
	// declared; it is absent when neither the installation nor its integration declares
	// sources and the operator manages none.
	ConditionSourcesSynced = "SourcesSynced"
)

// Condition reasons. Ready carries the reason of whatever keeps the object from working.
const (
	// ReasonReady: everything works.
	ReasonReady = "Ready"
	// ReasonReconciling: the controller is working on it (first visit, a new install).
	ReasonReconciling = "Reconciling"
	// ReasonPaused: the paused annotation is set; nothing is done.
	ReasonPaused = "Paused"
	// ReasonDeleting: the installation is being deleted; its channel is disconnected first.
	ReasonDeleting = "Deleting"

	// ReasonSecretNotFound: a referenced Secret or key is missing. Create it.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonIntegrationNotFound: the referenced KommoIntegration does not exist.
	ReasonIntegrationNotFound = "IntegrationNotFound"
	// ReasonIntegrationNotReady: the KommoIntegration misses a Secret.
	ReasonIntegrationNotReady = "IntegrationNotReady"

	// ReasonAwaitingAuthorization: no install has been received yet.
	ReasonAwaitingAuthorization = "AwaitingAuthorization"
	// ReasonAuthorized: tokens are held and fresh.
	ReasonAuthorized = "Authorized"
	// ReasonRefreshFailing: the last refresh failed but the access token is still valid;
	// Authorized and Ready stay True until it expires, and the refresh is retried.
	ReasonRefreshFailing = "RefreshFailing"
	// ReasonExchanged: the latest install's code was exchanged for tokens.
	ReasonExchanged = "Exchanged"
	// ReasonAccountNotFound: Kommo has no account at the install's host (404 on the
	// exchange). Terminal until the next install.
	ReasonAccountNotFound = "AccountNotFound"
	// ReasonInvalidState: the install's state was missing, expired or badly signed. Terminal
	// until the next install.
	ReasonInvalidState = "InvalidState"
	// ReasonCodeNotFound: the code Secret of the install is gone. Terminal until the next install.
	ReasonCodeNotFound = "CodeNotFound"
	// ReasonInvalidCode: Kommo rejected the code (expired after 20 minutes, or used).
	// Terminal until the next install.
	ReasonInvalidCode = "InvalidCode"
	// ReasonInvalidClient: Kommo rejected the client secret or redirect URI. Fix the
	// KommoIntegration or its Secret; the controller retries within seconds of the change.
	ReasonInvalidClient = "InvalidClient"
	// ReasonReinstallRequired: Kommo says the refresh token is revoked; the account must
	// install the integration again.
	ReasonReinstallRequired = "ReinstallRequired"
	// ReasonRevoked: the account disabled the integration (verified "access revoked" hook).
	ReasonRevoked = "Revoked"
	// ReasonTokenExpired: the long-lived token has expired. Put a new one in its Secret.
	ReasonTokenExpired = "TokenExpired"
	// ReasonInvalidToken: the long-lived token is not a Kommo access token.
	ReasonInvalidToken = "InvalidToken"
	// ReasonForbiddenDomain: the account domain is not under the integration's accountDomains.
	ReasonForbiddenDomain = "ForbiddenDomain"

	// ReasonConnected: the channel is connected.
	ReasonConnected = "Connected"
	// ReasonConnectPending: waiting for tokens and the account's amojo_id.
	ReasonConnectPending = "ConnectPending"
	// ReasonInvalidSignature: the Chats API rejected our signature: check the channel secret.
	ReasonInvalidSignature = "InvalidSignature"
	// ReasonChannelNotFound: the Chats API does not know the channel id.
	ReasonChannelNotFound = "ChannelNotFound"
	// ReasonDisconnected: the channel was disconnected (revocation).
	ReasonDisconnected = "Disconnected"

	// ReasonSynced: every declared source exists in Kommo as declared.
	ReasonSynced = "Synced"
	// ReasonPipelineNotFound: a source names a pipeline (by name, or an id) the account
	// does not have; the message names the source's externalID. The other sources sync.
	ReasonPipelineNotFound = "PipelineNotFound"
	// ReasonPipelineArchived: a source names an archived pipeline, where incoming leads
	// would be hidden; the message names the source. The other sources sync.
	ReasonPipelineArchived = "PipelineArchived"
	// ReasonSourceLimitReached: more sources are declared than Kommo allows an
	// integration in one account (100); the message names those left out.
	ReasonSourceLimitReached = "SourceLimitReached"
	// ReasonSourceRejected: Kommo refused one source; the message names its externalID
	// and Kommo's error code. The other sources sync.
	ReasonSourceRejected = "SourceRejected"

	// ReasonRateLimited: Kommo answered 429; the controller waits as told.
	ReasonRateLimited = "RateLimited"
	// ReasonBlocked: Kommo answered with an HTML 403 (IP blocked or WAF); the controller
	// backs off. Check the egress IP.
	ReasonBlocked = "Blocked"
	// ReasonKommoUnavailable: Kommo failed transiently (5xx, timeout); retried with backoff.
	ReasonKommoUnavailable = "KommoUnavailable"
	// ReasonKommoRejected: Kommo rejected a request as bad; retried with backoff.
	ReasonKommoRejected = "KommoRejected"
)

// Reasons of status.lastRevocation when a revocation hook is ignored.
const (
	// ReasonNotConfirmed: the tokens still work, so the hook is a replay or a forgery.
	ReasonNotConfirmed = "NotConfirmed"
	// ReasonInvalidHook: the hook's client_uuid or signature does not verify.
	ReasonInvalidHook = "InvalidHook"
	// ReasonOtherAccount: the hook names another account than this installation's.
	ReasonOtherAccount = "OtherAccount"
	// ReasonSuperseded: an install was recorded after the hook; it ends nothing.
	ReasonSuperseded = "Superseded"
)
