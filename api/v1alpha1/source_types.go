package v1alpha1

// Source is one Kommo lead source: what routes a chat's incoming lead into a
// pipeline. Kommo scopes sources to the integration whose token created them
// and to the account; the operator manages the ones declared here, matched to
// Kommo's by externalID.
// +kubebuilder:validation:XValidation:rule="!(has(self.pipelineID) && has(self.pipelineName))",message="pipelineID and pipelineName are exclusive: name the pipeline one way"
type Source struct {
	// externalID is the source's code on the integration side, unique per
	// integration and account and immutable in Kommo: at most 36 printable
	// ASCII characters. Kommo may store it lowercased, so ids that differ only
	// in case are the same source.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[ -~]+$')",message="externalID must be printable ASCII"
	ExternalID string `json:"externalID"`

	// name is the source's name shown in Kommo.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// pipelineID is the Kommo pipeline incoming leads of this source land in.
	// Exclusive with pipelineName; when neither is set, the account's main
	// pipeline.
	// +optional
	// +kubebuilder:validation:Minimum=1
	PipelineID int64 `json:"pipelineID,omitempty"`

	// pipelineName names the pipeline instead of its id, resolved in each
	// account (pipeline ids differ between accounts).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	PipelineName string `json:"pipelineName,omitempty"`

	// default makes this the integration's default source in the account. At
	// most one source is the default.
	// +optional
	Default bool `json:"default,omitempty"`

	// originCode is the code of the chat channel the source belongs to, as
	// issued at the channel's registration (e.g. kommo.ext.30470678): at most
	// 20 printable ASCII characters, not all digits. Defaults to the
	// KommoIntegration's spec.chat.code.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:XValidation:rule="self.matches('^[ -~]+$') && !self.matches('^[0-9]+$') && !self.matches('^\"+$')",message="originCode must be printable ASCII and not all digits"
	OriginCode string `json:"originCode,omitempty"`
}

// SourceStatus is one source the operator manages in the account.
type SourceStatus struct {
	// externalID as declared.
	// +required
	// +kubebuilder:validation:MaxLength=36
	ExternalID string `json:"externalID"`

	// id is Kommo's id of the source.
	// +required
	ID int64 `json:"id"`

	// pipelineID is the pipeline the source routes into.
	// +optional
	PipelineID int64 `json:"pipelineID,omitempty"`

	// pipelineName is the declared pipelineName that pipelineID was resolved
	// from; empty when the pipeline was declared by id or is the main one.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	PipelineName string `json:"pipelineName,omitempty"`

	// mainPipeline is true when the declaration names no pipeline and
	// pipelineID is the account's main pipeline as it was when resolved.
	// +optional
	MainPipeline bool `json:"mainPipeline,omitempty"`

	// ownership is Created when the operator created the source, so it deletes
	// it once no longer declared; Adopted when the source already existed with
	// a declared externalID, so it is only left alone once no longer declared.
	// +required
	// +kubebuilder:validation:Enum=Created;Adopted
	Ownership string `json:"ownership"`
}

// Source ownerships.
const (
	SourceCreated = "Created"
	SourceAdopted = "Adopted"
)
