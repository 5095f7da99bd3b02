package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KommoIntegrationSpec is the integration as registered in Kommo. It lives in
// Git.
// +kubebuilder:validation:XValidation:rule="!has(self.chat) || !has(self.stateSecretRef) || self.chat.secretRef.name != self.stateSecretRef.name || self.chat.secretRef.key != self.stateSecretRef.key",message="chat.secretRef and stateSecretRef must not point at the same Secret key"
type KommoIntegrationSpec struct {
	// clientID is the integration ID (a UUID) from the integration's Keys tab in
	// Kommo.
	// +required
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="clientID must be the integration ID from Kommo, a UUID such as 01d01160-d7a0-4087-b4af-6a1bb83fcd1d"
	ClientID string `json:"clientID"`

	// clientSecretRef is the Secret key holding the integration's secret key from
	// Kommo. Only the controller reads it; it is sent only to hosts under
	// accountDomains.
	// +required
	ClientSecretRef SecretKeyRef `json:"clientSecretRef"`

	// redirectURI is exactly the Redirect URI registered in Kommo, usually the
	// webhook's https://<public host>/kommo/<namespace>/<integration>/redirect.
	// Kommo compares it byte for byte on every token request: a trailing slash
	// makes every exchange fail.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",message="redirectURI must be an absolute http(s) URL, exactly as registered in Kommo"
	// +kubebuilder:validation:XValidation:rule="!self.contains('#')",message="redirectURI must not contain a fragment"
	RedirectURI string `json:"redirectURI"`

	// accountDomains are the account host suffixes installs may come from, such as
	// kommo.com. The webhook rejects a referer outside them and the controller
	// never sends the client secret elsewhere. When empty: kommo.com, amocrm.ru
	// and amocrm.com.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')",message="each account domain must be a lowercase DNS name with at least two labels, such as kommo.com"
	AccountDomains []string `json:"accountDomains,omitempty"`

	// chat, when set, makes every installation connect this Chats API channel and
	// record the returned scope_id.
	// +optional
	Chat *ChatSpec `json:"chat,omitempty"`

	// stateSecretRef is an HMAC-SHA256 key. When set, installs started from your
	// own site (not from_widget) must carry a valid signed state; see the README
	// for its format.
	// +optional
	StateSecretRef *SecretKeyRef `json:"stateSecretRef,omitempty"`

	// tokenSecretTemplate is metadata copied onto every token Secret of this
	// integration, for example labels your backend selects on.
	// +optional
	TokenSecretTemplate *SecretTemplate `json:"tokenSecretTemplate,omitempty"`

	// browserRedirectURL is your own site's page a browser is sent to (303 See
	// Other) after the webhook accepted an install, for example your onboarding
	// page. The webhook adds the query parameters account (the account host) and
	// installation (the KommoInstallation's name), replacing any of those names
	// already in the URL; never the code or the state. Without it the browser
	// sees the webhook's own page. HTTPS only.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="browserRedirectURL must be an absolute https URL with a host"
	// +kubebuilder:validation:XValidation:rule="!self.contains('#')",message="browserRedirectURL must not contain a fragment"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="browserRedirectURL must be printable ASCII without spaces: percent-encode anything else"
	BrowserRedirectURL string `json:"browserRedirectURL,omitempty"`

	// sources are the lead sources every installation gets in its account, for
	// example one per channel in the main pipeline. An installation's own
	// spec.sources add to them and win on the same externalID. Kommo requires
	// the integration's widget to list lead_sources in its manifest.
	// +optional
	// +listType=map
	// +listMapKey=externalID
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.externalID.lowerAscii() == a.externalID.lowerAscii()))",message="sources must have distinct externalIDs, ignoring case"
	// +kubebuilder:validation:XValidation:rule="self.filter(s, has(s.default) && s.default).size() <= 1",message="at most one source may be the default"
	Sources []Source `json:"sources,omitempty"`

	// widgetCode is the code of the integration's widget. Without the
	// integration's "multiple sources" setting Kommo creates one source itself
	// whose external id is this code; the operator recognises it and never
	// touches it. Latin letters, digits and '_', starting with a lowercase
	// letter.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z][A-Za-z0-9_]*$')",message="widgetCode must be Kommo's widget code: Latin letters, digits and '_', starting with a lowercase letter"
	WidgetCode string `json:"widgetCode,omitempty"`
}

// ChatSpec is a Chats API channel registered with Kommo for this integration.
type ChatSpec struct {
	// channelID is the channel's ID (a UUID) issued by Kommo.
	// +required
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="channelID must be the channel ID from Kommo, a UUID"
	ChannelID string `json:"channelID"`

	// secretRef is the Secret key holding the channel secret Kommo issued with the
	// channel.
	// +required
	SecretRef SecretKeyRef `json:"secretRef"`

	// title is the channel name shown in Kommo. Defaults to the KommoIntegration's
	// name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Title string `json:"title,omitempty"`

	// hookAPIVersion is the version of the hooks Kommo sends to the channel.
	// Defaults to v2; v1 is deprecated by Kommo.
	// +optional
	// +kubebuilder:validation:Enum=v1;v2
	HookAPIVersion string `json:"hookAPIVersion,omitempty"`

	// code is the channel's symbolic code from its registration with Kommo
	// (e.g. kommo.ext.30470678), the default originCode of sources: at most 20
	// printable ASCII characters, not all digits.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:XValidation:rule="self.matches('^[ -~]+$') && !self.matches('^[0-9]+$') && !self.matches('^\"+$')",message="code must be printable ASCII and not all digits"
	Code string `json:"code,omitempty"`
}

// SecretTemplate is metadata the operator copies onto the Secrets it writes.
type SecretTemplate struct {
	// labels to add. Keys under kommo-operator.io/ and
	// app.kubernetes.io/managed-by are the operator's and are ignored here.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations to add.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// KommoIntegrationStatus is what the controller observed of a
// KommoIntegration.
type KommoIntegrationStatus struct {
	// observedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready tells whether every referenced Secret key exists.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// accountDomains are the effective account domains, defaults applied.
	// +optional
	// +listType=atomic
	AccountDomains []string `json:"accountDomains,omitempty"`

	// chat holds the effective chat settings, defaults applied.
	// +optional
	Chat *ChatStatus `json:"chat,omitempty"`

	// configVersion identifies the effective configuration: the generation and the
	// resource versions of the referenced Secrets. It changes within seconds of a
	// fix, and installations then retry at once what failed with the old one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ConfigVersion string `json:"configVersion,omitempty"`
}

// ChatStatus is the effective channel configuration installations connect
// with.
type ChatStatus struct {
	// channelID of the channel.
	ChannelID string `json:"channelID"`
	// title sent on connect.
	Title string `json:"title"`
	// hookAPIVersion sent on connect.
	HookAPIVersion string `json:"hookAPIVersion"`
}

// KommoIntegration is a public Kommo integration whose installs this operator
// manages. Keep it in Git; the webhook turns Kommo's redirects to its Redirect
// URI into KommoInstallations.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kint,categories=kommo
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: installations and Secrets carry it as a label value"
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.spec.clientID`
// +kubebuilder:printcolumn:name="Chat",type=string,JSONPath=`.spec.chat.channelID`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KommoIntegration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the integration as registered in Kommo.
	// +required
	Spec KommoIntegrationSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status KommoIntegrationStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// KommoIntegrationList is a list of KommoIntegrations.
type KommoIntegrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KommoIntegration `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KommoIntegration{}, &KommoIntegrationList{})
}
