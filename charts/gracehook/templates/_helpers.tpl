{{/* Object names: fullnameOverride, else the release name when it contains
"gracehook", else RELEASE-gracehook. */}}
{{- define "gracehook.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "gracehook" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-gracehook" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. app.kubernetes.io/name stays "gracehook": the
ServiceMonitor names its job after it, and the alerts select job="gracehook". */}}
{{- define "gracehook.labels" -}}
app.kubernetes.io/name: gracehook
app.kubernetes.io/part-of: gracehook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The webhook pods, as manifests/base selects them. */}}
{{- define "gracehook.selectorLabels" -}}
app.kubernetes.io/name: gracehook
app.kubernetes.io/component: webhook
{{- end -}}

{{/* Namespaces gracehook never patches: the configured ones and its own. */}}
{{- define "gracehook.excludedNamespaces" -}}
{{- append (without .Values.excludeNamespaces .Release.Namespace) .Release.Namespace | toJson -}}
{{- end -}}

{{/* The Secret holding tls.crt and tls.key. */}}
{{- define "gracehook.tlsSecretName" -}}
{{- if eq .Values.certificate.source "secret" -}}
{{- required "certificate.secret.name is required with certificate.source=secret" .Values.certificate.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "gracehook.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* --tls-server-names: tlsServerNames, else the name the API server checks
for the webhook configuration's service reference, <service>.<namespace>.svc. */}}
{{- define "gracehook.tlsServerNames" -}}
{{- if .Values.tlsServerNames -}}
{{- join "," .Values.tlsServerNames -}}
{{- else -}}
{{- printf "%s.%s.svc" (include "gracehook.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* "true" when a client CA is configured (mTLS); fails on both sources. */}}
{{- define "gracehook.clientCA" -}}
{{- if and .Values.clientCA.secretName .Values.clientCA.configMapName -}}
{{- fail "clientCA: set secretName or configMapName, not both" -}}
{{- end -}}
{{- if or .Values.clientCA.secretName .Values.clientCA.configMapName -}}
{{- required "clientCA.key (the key holding the CA bundle) is required" .Values.clientCA.key | ne "" -}}
{{- end -}}
{{- end -}}

{{/* The observer's objects (observe.enabled): <fullname>-observe, which is
also its Lease's name. */}}
{{- define "gracehook.observeName" -}}
{{- printf "%s-observe" (include "gracehook.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of the observer's objects: app.kubernetes.io/name gracehook-observe,
so that the ServiceMonitor names its job `gracehook-observe` and the
webhook's selectors (job="gracehook", its pods) never include it. */}}
{{- define "gracehook.observeLabels" -}}
app.kubernetes.io/name: gracehook-observe
app.kubernetes.io/part-of: gracehook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The observer's pods, as manifests/observe selects them. */}}
{{- define "gracehook.observeSelectorLabels" -}}
app.kubernetes.io/name: gracehook-observe
{{- end -}}
