package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KommoInstallationSpec says how the integration got into one Kommo account.
// The webhook writes authorization and revocation; people write
// longLivedTokenSecretRef.
// +kubebuilder:validation:XValidation:rule="!(has(self.authorization) && has(self.longLivedTokenSecretRef))",message="authorization and longLivedTokenSecretRef are exclusive: an installation is either installed through OAuth or uses a long-lived token"
type KommoInstallationSpec struct {
	// integrationRef is the KommoIntegration in the same namespace this is an
	// install of.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="integrationRef is immutable"
	IntegrationRef LocalObjectReference `json:"integrationRef"`

	// accountDomain is the Kommo account host, as in Kommo's referer, e.g.
	// acme.kommo.com.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')",message="accountDomain must be a lowercase DNS name such as acme.kommo.com, without scheme, port or path"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="accountDomain is immutable"
	AccountDomain string `json:"accountDomain"`

	// authorization is the latest install Kommo sent to the Redirect URI. Written
	// by the webhook; a newer receivedAt is a reinstall.
	// +optional
	Authorization *Authorization `json:"authorization,omitempty"`

	// revocation is the latest "access revoked" hook Kommo sent for this account.
	// Written by the webhook; the controller verifies its signature before acting
	// on it.
	// +optional
	Revocation *Revocation `json:"revocation,omitempty"`

	// longLivedTokenSecretRef points at a long-lived token of a private
	// integration. Such an installation is declared by hand: no code exchange, no
	// refresh; expiry is read from the token and a Warning event is raised before
	// it runs out.
	// +optional
	LongLivedTokenSecretRef *SecretKeyRef `json:"longLivedTokenSecretRef,omitempty"`

	// sources are lead sources for this account only, added to the
	// KommoIntegration's spec.sources (and winning on the same externalID; a
	// default here overrides a default there). Written by the integration's
	// backend with its own field manager through server-side apply, e.g. one
	// per connected phone number; the webhook and the controller never touch
	// this field.
	// +optional
	// +listType=map
	// +listMapKey=externalID
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.externalID.lowerAscii() == a.externalID.lowerAscii()))",message="sources must have distinct externalIDs, ignoring case"
	// +kubebuilder:validation:XValidation:rule="self.filter(s, has(s.default) && s.default).size() <= 1",message="at most one source may be the default"
	Sources []Source `json:"sources,omitempty"`
}

// Authorization is one install as Kommo sent it to the Redirect URI.
type Authorization struct {
	// codeSecretRef is the Secret key holding the authorization code. The Secret
	// is created by the webhook, never updated, and deleted by the controller once
	// exchanged.
	// +required
	CodeSecretRef SecretKeyRef `json:"codeSecretRef"`

	// receivedAt is when the webhook received the install, with sub-second
	// precision so that two installs in the same second are ordered.
	// +required
	ReceivedAt metav1.MicroTime `json:"receivedAt"`

	// fromWidget is true when Kommo sent the install itself after an install from
	// its UI. Such installs carry no state.
	// +optional
	FromWidget bool `json:"fromWidget,omitempty"`

	// state is the state parameter as received, verified by the controller when
	// the integration sets stateSecretRef.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	State string `json:"state,omitempty"`
}

// Revocation is one "access revoked" hook as Kommo sent it.
type Revocation struct {
	// receivedAt is when the webhook received the hook.
	// +required
	ReceivedAt metav1.MicroTime `json:"receivedAt"`

	// accountID is the numeric Kommo account id as received.
	// +required
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+$')",message="accountID must be the numeric Kommo account id"
	AccountID string `json:"accountID"`

	// clientUUID is the integration id as received; it must equal the
	// integration's clientID.
	// +required
	// +kubebuilder:validation:MaxLength=64
	ClientUUID string `json:"clientUUID"`

	// signature is the hook's hex HMAC-SHA256 as received. It authenticates the
	// hook; it is not a secret.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]+$')",message="signature must be hexadecimal"
	Signature string `json:"signature"`

	// supersedes is spec.authorization.codeSecretRef.name as the object held it
	// when the hook was recorded ("" when it held none): the install this
	// revocation ends. Installs recorded later are not affected by it, whatever
	// the clocks of the webhook replicas say.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Supersedes string `json:"supersedes,omitempty"`
}

// Outcome is how the controller dealt with one install or one revocation hook.
type Outcome struct {
	// receivedAt identifies the install (spec.authorization.receivedAt) or the
	// hook (spec.revocation.receivedAt).
	// +required
	ReceivedAt metav1.MicroTime `json:"receivedAt"`

	// result: for an install Succeeded (its code was exchanged) or Failed; for a
	// revocation Revoked (confirmed with Kommo and acted on) or Ignored.
	// +required
	// +kubebuilder:validation:Enum=Succeeded;Failed;Revoked;Ignored
	Result string `json:"result"`

	// reason says why, as a condition reason.
	// +optional
	Reason string `json:"reason,omitempty"`

	// message explains the reason to a person.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// time is when the controller decided.
	// +required
	Time metav1.Time `json:"time"`
}

// Outcome results.
const (
	OutcomeSucceeded = "Succeeded"
	OutcomeFailed    = "Failed"
	OutcomeRevoked   = "Revoked"
	OutcomeIgnored   = "Ignored"
)

// ConnectedChannel is the channel configuration of the last successful connect
// and the install it was made for.
type ConnectedChannel struct {
	ChatStatus `json:",inline"`

	// install is status.installedAt when the connect was made; a later install
	// connects again. Absent on connects recorded before this field existed:
	// those were made for the installedAt of their time.
	// +optional
	Install *metav1.MicroTime `json:"install,omitempty"`

	// secretRef is the Secret key the channel secret was read from, so that a
	// change of channel can sign the old channel's disconnect.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// SourcesSync records one successful sync of an installation's sources.
type SourcesSync struct {
	// time of the sync.
	// +required
	Time metav1.Time `json:"time"`

	// install is status.installedAt at the time.
	// +optional
	Install *metav1.MicroTime `json:"install,omitempty"`

	// declarations is a digest of what was declared (both lists, the origin and
	// widget codes); a different one syncs again.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Declarations string `json:"declarations,omitempty"`
}

// Backoff is the persisted retry state of one concern after Kommo-side
// failures. Each concern waits out its own: a failing channel never delays a
// due token refresh.
type Backoff struct {
	// concern: Tokens, Account, Channel or Sources.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Concern string `json:"concern"`

	// reason of the last failure, as a condition reason.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`

	// message of the last failure.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// failedAttempts counts consecutive failures.
	// +required
	FailedAttempts int32 `json:"failedAttempts"`

	// lastFailureTime is when the last one happened.
	// +required
	LastFailureTime metav1.Time `json:"lastFailureTime"`

	// configVersion identifies the configuration the failures happened with (the
	// KommoIntegration's generation and the resource versions of the Secrets it
	// references); a change ends the backoff.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ConfigVersion string `json:"configVersion,omitempty"`
}

// KommoInstallationStatus is what the controller did for this installation and
// what Kommo told it.
type KommoInstallationStatus struct {
	// observedGeneration is the generation last fully processed.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Authorized (the installation holds a working grant), Installed
	// (the latest install received was exchanged), ChannelConnected (only with
	// chat) and Ready, the summary: the backend can work now.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// accountDomain is the account host the controller talks to: spec.accountDomain
	// until the account renames its subdomain, then the new host.
	// +optional
	AccountDomain string `json:"accountDomain,omitempty"`

	// accountID is the Kommo (CRM) account id.
	// +optional
	AccountID int64 `json:"accountID,omitempty"`

	// amojoID is the account's Chats API id.
	// +optional
	AmojoID string `json:"amojoID,omitempty"`

	// scopeID is what the Chats API returned on the last connect; the
	// integration's backend uses it to send messages.
	// +optional
	ScopeID string `json:"scopeID,omitempty"`

	// connectedChannel is the channel configuration of the last successful
	// connect. A different effective configuration on the KommoIntegration causes
	// a reconnect.
	// +optional
	ConnectedChannel *ConnectedChannel `json:"connectedChannel,omitempty"`

	// tokenSecretName is the Secret holding the tokens, in this namespace.
	// +optional
	TokenSecretName string `json:"tokenSecretName,omitempty"`

	// tokenSecretVersion is the resourceVersion of the token Secret that the
	// controller last confirmed holds this status's account facts (account id,
	// amojo_id, scope_id, account domain). The controller caches only the
	// metadata of its Secrets: a token Secret at another version is read once
	// and repaired.
	// +optional
	TokenSecretVersion string `json:"tokenSecretVersion,omitempty"`

	// accessTokenExpiresAt is when the current access token expires.
	// +optional
	AccessTokenExpiresAt *metav1.Time `json:"accessTokenExpiresAt,omitempty"`

	// refreshTime is when the controller next refreshes the tokens, in whole
	// seconds.
	// +optional
	RefreshTime *metav1.Time `json:"refreshTime,omitempty"`

	// lastRefreshTime is when the tokens were last refreshed.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// installedAt is the authorization.receivedAt of the install whose grant the
	// installation holds.
	// +optional
	InstalledAt *metav1.MicroTime `json:"installedAt,omitempty"`

	// lastAttempt is the outcome of the latest install received. A failed one
	// leaves a working grant alone.
	// +optional
	LastAttempt *Outcome `json:"lastAttempt,omitempty"`

	// lastRevocation is the outcome of the latest "access revoked" hook.
	// +optional
	LastRevocation *Outcome `json:"lastRevocation,omitempty"`

	// connectedAt is the time of the last successful channel connect.
	// +optional
	ConnectedAt *metav1.Time `json:"connectedAt,omitempty"`

	// backoffs are the persisted retry states of the concerns that are failing.
	// +optional
	// +listType=map
	// +listMapKey=concern
	// +kubebuilder:validation:MaxItems=8
	Backoffs []Backoff `json:"backoffs,omitempty"`

	// sources are the Kommo sources the operator manages in the account:
	// externalID to Kommo's source id and pipeline id. Sources it did not
	// create or adopt (including the one Kommo creates with the widget code)
	// are never listed here nor touched.
	// +optional
	// +listType=map
	// +listMapKey=externalID
	// +kubebuilder:validation:MaxItems=100
	Sources []SourceStatus `json:"sources,omitempty"`

	// sourcesSynced is when the sources were last synced and for what: a new
	// install or a change of the declared sources syncs again at once, drift is
	// repaired hourly.
	// +optional
	SourcesSynced *SourcesSync `json:"sourcesSynced,omitempty"`
}

// KommoInstallation is one install of a KommoIntegration in one Kommo account,
// named <integration>.<account host> so that a reinstall lands on the same
// object. The controller keeps its tokens fresh in a Secret and its chat
// channel connected.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kinst,categories=kommo
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.integrationRef.name + '.' + self.spec.accountDomain",message="metadata.name must be <spec.integrationRef.name>.<spec.accountDomain>"
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.status.accountDomain`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Scope ID",type=string,JSONPath=`.status.scopeID`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.accessTokenExpiresAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KommoInstallation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says how the integration got into the account.
	// +required
	Spec KommoInstallationSpec `json:"spec"`

	// status is what the controller did and what Kommo told it.
	// +optional
	Status KommoInstallationStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// KommoInstallationList is a list of KommoInstallations.
type KommoInstallationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KommoInstallation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KommoInstallation{}, &KommoInstallationList{})
}
