{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "wintok.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, prefixed with the chart name unless the release already contains it.
*/}}
{{- define "wintok.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "wintok.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "wintok.labels" -}}
helm.sh/chart: {{ include "wintok.chart" . }}
{{ include "wintok.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wintok
{{- end }}

{{/*
Selector labels; callers add app.kubernetes.io/component.
*/}}
{{- define "wintok.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wintok.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the workers' ServiceAccount.
*/}}
{{- define "wintok.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wintok.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is set, else repository:tag.
Usage: include "wintok.image" (dict "image" .Values.image "override" .Values.migration.image)
*/}}
{{- define "wintok.image" -}}
{{- $repository := .image.repository }}
{{- $tag := .image.tag }}
{{- $digest := .image.digest }}
{{- with .override }}
{{- if .repository }}{{ $repository = .repository }}{{ $digest = "" }}{{ end }}
{{- if .tag }}{{ $tag = .tag }}{{ $digest = "" }}{{ end }}
{{- end }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository (required "image.tag is required: pin a tag" $tag) }}
{{- end }}
{{- end }}

{{/*
Seconds as a .NET TimeSpan in the invariant "c" format (d.hh:mm:ss), which the configuration binder parses. A bare
number would be read as days.
*/}}
{{- define "wintok.timespan" -}}
{{- $s := int . }}
{{- printf "%d.%02d:%02d:%02d" (div $s 86400) (mod (div $s 3600) 24) (mod (div $s 60) 60) (mod $s 60) }}
{{- end }}

{{/*
The Secret holding the connection strings.
*/}}
{{- define "wintok.secretName" -}}
{{- required "secrets.existingSecret is required: create a Secret with the WinTok connection strings first (deploy/README.md)" .Values.secrets.existingSecret }}
{{- end }}

{{/*
prometheus.io annotations for a pod serving /metrics on the given port. Usage: include "wintok.scrapeAnnotations" (dict "root" . "port" 9464)
*/}}
{{- define "wintok.scrapeAnnotations" -}}
{{- if .root.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
The partition queue KEDA watches.
*/}}
{{- define "wintok.queueName" -}}
{{- default (printf "%s.tokenize-partition" .Values.config.jobQueue.queuePrefix) .Values.keda.queueName }}
{{- end }}

{{/*
Environment shared by every WinTok container: connection strings from the Secret and the host options.
*/}}
{{- define "wintok.env" -}}
{{- $secret := include "wintok.secretName" . -}}
- name: WINTOK_POSTGRES
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.postgres }}
- name: WINTOK_RABBITMQ
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.rabbitmq }}
- name: WINTOK_BLOB_CONNECTION
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.blobConnection }}
- name: ResultsDatabase__Provider
  value: Postgres
- name: ResultsDatabase__CommandTimeoutSeconds
  value: {{ .Values.config.resultsDatabase.commandTimeoutSeconds | quote }}
- name: JobQueue__Transport
  value: RabbitMq
- name: JobQueue__QueuePrefix
  value: {{ .Values.config.jobQueue.queuePrefix | quote }}
- name: JobQueue__PrefetchCount
  value: {{ .Values.config.jobQueue.prefetchCount | quote }}
- name: JobQueue__DeliveryLimit
  value: {{ .Values.config.jobQueue.deliveryLimit | quote }}
- name: JobQueue__HandlerTimeout
  value: {{ include "wintok.timespan" .Values.config.jobQueue.handlerTimeoutSeconds | quote }}
- name: JobQueue__DrainTimeout
  value: {{ include "wintok.timespan" .Values.config.jobQueue.drainTimeoutSeconds | quote }}
- name: Model__Device
  value: {{ .Values.config.tokenize.device | quote }}
- name: Model__BatchSize
  value: {{ .Values.config.tokenize.batchSize | quote }}
- name: Worker__DecodeThreads
  value: {{ .Values.config.tokenize.decodeThreads | quote }}
- name: Worker__Lease
  value: {{ include "wintok.timespan" .Values.config.tokenize.leaseSeconds | quote }}
- name: Checkpoints__CacheFolder
  value: {{ .Values.worker.checkpointCache.path | quote }}
- name: Logging__LogLevel__Default
  value: {{ .Values.config.logLevel | quote }}
- name: Logging__Json
  value: {{ .Values.config.logJson | quote }}
{{- with .Values.metrics.otlpEndpoint }}
- name: Telemetry__OtlpEndpoint
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
