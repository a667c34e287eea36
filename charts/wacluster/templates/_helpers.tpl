{{- define "wacluster.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wacluster.labels" -}}
app.kubernetes.io/name: wacluster-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wacluster.selector" -}}
app.kubernetes.io/name: wacluster-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wacluster.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "wacluster.namespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- join "," .Values.watch.namespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* "auto" means: only when the Prometheus Operator's API is installed. */}}
{{- define "wacluster.monitoringEnabled" -}}
{{- $setting := index . 0 -}}
{{- $ctx := index . 1 -}}
{{- if eq (toString $setting) "auto" -}}
{{- if $ctx.Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- else if $setting -}}true{{- end -}}
{{- end -}}
