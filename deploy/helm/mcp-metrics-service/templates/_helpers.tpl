{{/*
The chart's name, or nameOverride.
*/}}
{{- define "mcp-metrics.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' name: fullnameOverride, else the release name, followed by the chart's name unless
the release name already contains it. 63 characters at most (a DNS label).
*/}}
{{- define "mcp-metrics.fullname" -}}
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
Labels on every object.
*/}}
{{- define "mcp-metrics.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mcp-metrics.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The labels that select the pods (the Deployment's selector, the Service's): never change them
in an upgrade, a Deployment's selector is immutable.
*/}}
{{- define "mcp-metrics.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-metrics.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Whether the events go to PostgreSQL (DATABASE_URL) rather than the SQLite file.
*/}}
{{- define "mcp-metrics.postgres" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/*
The chart's Secret's entries: the API keys (METRICS_API_KEY_<NAME> for service <name>, the
inverse of the rule in docs/configuration.md: upper case, - as _), the admin key, DATABASE_URL and REDIS_URL when
given as values, and secretEnv. A YAML map, empty when there is nothing to keep.
*/}}
{{- define "mcp-metrics.secretData" -}}
{{- range $service, $key := .Values.apiKeys.byService }}
{{- if not (regexMatch "^[a-z0-9-]{1,50}$" $service) }}
{{- fail (printf "apiKeys.byService: %q cannot be named by a METRICS_API_KEY_<NAME> variable, whose service is <name> in lower case with - for _: use 1-50 characters of a-z 0-9 -" $service) }}
{{- end }}
{{- if not $key }}
{{- fail (printf "apiKeys.byService.%s: the key is empty" $service) }}
{{- end }}
{{ printf "METRICS_API_KEY_%s" ($service | upper | replace "-" "_") }}: {{ $key | b64enc | quote }}
{{- end }}
{{- with .Values.apiKeys.admin }}
METRICS_ADMIN_API_KEY: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.database.url }}
DATABASE_URL: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.redis.url }}
REDIS_URL: {{ . | b64enc | quote }}
{{- end }}
{{- range $name, $value := .Values.secretEnv }}
{{ $name }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
Refuses the values that cannot work, with a message saying what to set.
*/}}
{{- define "mcp-metrics.validate" -}}
{{- $postgres := include "mcp-metrics.postgres" . }}
{{- if and (gt (int .Values.replicaCount) 1) (not $postgres) }}
{{- fail (printf "replicaCount is %d, but replicas must share one database: set database.url (DATABASE_URL, postgres://...) or database.existingSecret. On SQLite keep replicaCount at 1." (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "database.url and database.existingSecret are both set: keep one" }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "redis.url and redis.existingSecret are both set: keep one" }}
{{- end }}
{{- if and .Values.apiKeys.existingSecret (or .Values.apiKeys.byService .Values.apiKeys.admin) }}
{{- fail "apiKeys.existingSecret is set: leave apiKeys.byService and apiKeys.admin empty (put the keys in that Secret)" }}
{{- end }}
{{- range $name, $value := .Values.config }}
{{- if has $name (list "METRICS_SERVICE_PORT" "OTEL_EXPORTER_PROMETHEUS_PORT" "OTEL_PROMETHEUS_PORT") }}
{{- fail (printf "config.%s: the probes, the Service and the ServiceMonitor use the container's ports 8890 and 9465; set service.port or service.metricsPort to change the Service's" $name) }}
{{- end }}
{{- if or (hasPrefix "METRICS_API_KEY_" $name) (has $name (list "METRICS_ADMIN_API_KEY" "DATABASE_URL" "REDIS_URL")) }}
{{- fail (printf "config.%s is a secret: use apiKeys, database or redis, which keep it in a Secret" $name) }}
{{- end }}
{{- if hasKey $.Values.secretEnv $name }}
{{- fail (printf "%s is set in both config and secretEnv: keep one" $name) }}
{{- end }}
{{- if eq $name "SQLITE_DB_PATH" }}
{{- fail "config.SQLITE_DB_PATH: the file is on the volume, at persistence.mountPath/metrics.db" }}
{{- end }}
{{- if eq $name "TMPDIR" }}
{{- fail "config.TMPDIR: temporary files go to the emptyDir on /tmp, the only writable place besides the volume" }}
{{- end }}
{{- end }}
{{- end }}
