{{/* Names and labels. */}}
{{- define "bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: bridge
app.kubernetes.io/part-of: kafka-qstash-migrator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The bridge's consumer group (bridge.yaml `group`, default migrator-bridge). */}}
{{- define "bridge.group" -}}
{{- default "migrator-bridge" .Values.bridgeConfig.group -}}
{{- end -}}

{{/* Sum of the partitions of estate.topics (0 when unknown). */}}
{{- define "bridge.partitions" -}}
{{- $total := 0 -}}
{{- range .Values.estate.topics -}}
{{- $total = add $total (required (printf "estate.topics: %v has no partitions" .name) .partitions) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* Refuse values that would put a credential in the ConfigMap or break the shutdown. */}}
{{- define "bridge.validate" -}}
{{- $cfg := .Values.bridgeConfig -}}
{{- if not $cfg.routes -}}
{{- fail "bridgeConfig.routes is empty: set bridgeConfig to your bridge.yaml (migrator plan writes helm-values.yaml with it)" -}}
{{- end -}}
{{- if and $cfg.qstash $cfg.qstash.token -}}
{{- fail "bridgeConfig.qstash.token: a credential in values would land in a ConfigMap; remove it and set qstash.existingSecret (a Secret with the token under qstash.tokenKey)" -}}
{{- end -}}
{{- if and $cfg.kafka $cfg.kafka.sasl_password -}}
{{- fail "bridgeConfig.kafka.sasl_password: a credential in values would land in a ConfigMap; remove it and put the Kafka client properties in a Secret named by kafka.existingSecret" -}}
{{- end -}}
{{- if and $cfg.kafka $cfg.kafka.options -}}
{{- range $key, $_ := $cfg.kafka.options -}}
{{- if regexMatch "(?i)(password|secret|jaas|token|key\\.pem)" $key -}}
{{- fail (printf "bridgeConfig.kafka.options.%s: a credential in values would land in a ConfigMap; put it in the client properties Secret named by kafka.existingSecret" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $deadline := default 30 $cfg.shutdown_deadline -}}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf $deadline 15) -}}
{{- fail (printf "terminationGracePeriodSeconds %v is too short: the bridge drains for up to shutdown_deadline (%v s), then commits and leaves the group; set it to at least %v" .Values.terminationGracePeriodSeconds $deadline (addf $deadline 15)) -}}
{{- end -}}
{{- if and .Values.qstash.required (not .Values.qstash.existingSecret) -}}
{{- fail "qstash.existingSecret is not set: create a Secret with the QStash token (kubectl create secret generic qstash --from-literal=QSTASH_TOKEN=...) and name it here, or set qstash.required=false when every route is direct-http" -}}
{{- end -}}
{{- end -}}
