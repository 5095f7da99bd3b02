{{/* The prefix of every object's name: kommo-operator unless overridden. */}}
{{- define "kommo-operator.fullname" -}}
{{- default "kommo-operator" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "kommo-operator.controller" -}}{{ include "kommo-operator.fullname" . }}-controller{{- end -}}
{{- define "kommo-operator.webhook" -}}{{ include "kommo-operator.fullname" . }}-webhook{{- end -}}

{{/* Labels of every object. */}}
{{- define "kommo-operator.labels" -}}
app.kubernetes.io/name: kommo-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one half: include with (list . "controller"). */}}
{{- define "kommo-operator.selector" -}}
app.kubernetes.io/name: kommo-operator
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kommo-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The username the API server gives the webhook's ServiceAccount. */}}
{{- define "kommo-operator.webhookUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "kommo-operator.webhook" . }}
{{- end -}}
