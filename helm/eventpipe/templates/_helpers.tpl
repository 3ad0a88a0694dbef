{{/*
Names and labels. Every object carries the recommended app.kubernetes.io/* labels; selectors
use only the stable ones (name, instance, component), since a selector cannot change after a
Deployment exists and version/chart change on every upgrade.
*/}}

{{- define "eventpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name; object names append "-<component>", so keep room for it. */}}
{{- define "eventpipe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eventpipe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eventpipe.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with (dict "root" $ "component" "ner"); component may be "". */}}
{{- define "eventpipe.labels" -}}
helm.sh/chart: {{ include "eventpipe.chart" .root }}
{{ include "eventpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ include "eventpipe.version" .root | quote }}
app.kubernetes.io/part-of: eventpipe
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Selector labels. Call with (dict "root" $ "component" "ner"). */}}
{{- define "eventpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventpipe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* A value as an environment-variable string. Helm reads numbers from values files as floats,
and toString would print 8000000 as "8e+06": whole floats are printed as integers. */}}
{{- define "eventpipe.str" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{/* The image of a service: repository@digest, else repository:tag (the chart's appVersion,
which the release workflow publishes, when the tag is empty). The events stage with the
transformers backend needs torch: the "-llm" variant of the same release. Call with
(dict "root" $ "service" "llm"); service may be "" (the hook Job). */}}
{{- define "eventpipe.image" -}}
{{- $img := .root.Values.image }}
{{- if not $img.repository }}
{{- fail "image.repository is empty: set it (and image.tag or image.digest) to the eventpipe image you pushed, e.g. ghcr.io/<owner>/eventpipe" }}
{{- end }}
{{- $llm := and (eq .service "llm") (eq .root.Values.llm.backend "transformers") }}
{{- if and $llm $img.llmDigest }}
{{- printf "%s@%s" $img.repository $img.llmDigest }}
{{- else if and (not $llm) $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- $tag := default .root.Chart.AppVersion $img.tag }}
{{- if not $tag }}
{{- fail "image.tag is empty and the chart has no appVersion: set image.tag or image.digest" }}
{{- end }}
{{- printf "%s:%s%s" $img.repository $tag (ternary $img.llmTagSuffix "" $llm) }}
{{- end }}
{{- end }}

{{/* The services that read or write files in the data directory and so mount the PVC. */}}
{{- define "eventpipe.dataServices" -}}
{{- list "ingest" "sink" "checkpoint" "linker" | toJson }}
{{- end }}

{{/* The services that own files of the data directory: at most one replica, ever. */}}
{{- define "eventpipe.singletons" -}}
{{- list "sink" "checkpoint" "linker" | toJson }}
{{- end }}

{{/* Consumer services KEDA may scale, with the topic each one consumes. */}}
{{- define "eventpipe.sourceTopics" -}}
{{- dict "ingest" "submissions" "ner" "docs" "dp" "ner" "llm" "dp" | toJson }}
{{- end }}

{{- define "eventpipe.claimName" -}}
{{- default (printf "%s-data" (include "eventpipe.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* The credentials each service reads (secret keys = variable names); no other key of the
Secret reaches its pods: ner and dp never see a database password. */}}
{{- define "eventpipe.serviceSecretKeys" -}}
{{- $kafka := list "EVENTPIPE_SASL_PASSWORD" }}
{{- $stores := list "EVENTPIPE_POSTGRES_DSN" "EVENTPIPE_ELASTICSEARCH_PASSWORD" "EVENTPIPE_ELASTICSEARCH_API_KEY" }}
{{- dict "ingest" $kafka "ner" $kafka "dp" $kafka "checkpoint" $kafka "console" $kafka "llm" (concat $kafka (list "EVENTPIPE_LLM_API_KEY")) "sink" (concat $kafka $stores) "linker" (concat $kafka $stores) "setup" (concat $kafka (list "EVENTPIPE_POSTGRES_DSN" "EVENTPIPE_POSTGRES_MIGRATION_DSN")) | toJson }}
{{- end }}

{{/* env entries for the credentials of one service, each from its own key of the Secret.
An existing Secret may lack a key (optional); the chart's own has only the keys given.
The SASL password of kafka.sasl.passwordSecret wins over the Secret's. Call with
(dict "root" $ "service" "sink" "secret" <Secret name or "">). */}}
{{- define "eventpipe.secretEnv" -}}
{{- $root := .root }}
{{- $keys := get (include "eventpipe.serviceSecretKeys" $root | fromJson) .service }}
{{- $own := include "eventpipe.secretData" $root | fromYaml }}
{{- $existing := $root.Values.secrets.existingSecret }}
{{- $sasl := $root.Values.kafka.sasl.passwordSecret }}
{{- range $key := $keys }}
{{- if and (eq $key "EVENTPIPE_SASL_PASSWORD") $sasl.name }}
- name: EVENTPIPE_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sasl.name }}
      key: {{ $sasl.key }}
{{- else if and $.secret (or $existing (hasKey $own $key)) }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $.secret }}
      key: {{ $key }}
      {{- if $existing }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret whose keys become EVENTPIPE_* variables: an existing one, or the chart's own
(only when a credential is given in values). Empty: no such Secret. */}}
{{- define "eventpipe.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if include "eventpipe.secretData" . }}
{{- printf "%s-credentials" (include "eventpipe.fullname" .) }}
{{- end }}
{{- end }}

{{/* The chart-made Secret's data: each credential given in values, under its variable's name. */}}
{{- define "eventpipe.secretData" -}}
{{- $s := .Values.secrets }}
{{- $map := dict "EVENTPIPE_SASL_PASSWORD" $s.saslPassword "EVENTPIPE_POSTGRES_DSN" $s.postgresDsn "EVENTPIPE_POSTGRES_MIGRATION_DSN" $s.postgresMigrationDsn "EVENTPIPE_ELASTICSEARCH_PASSWORD" $s.elasticsearchPassword "EVENTPIPE_ELASTICSEARCH_API_KEY" $s.elasticsearchApiKey "EVENTPIPE_LLM_API_KEY" $s.llmApiKey }}
{{- range $key := keys $map | sortAlpha }}
{{- with get $map $key }}
{{ $key }}: {{ . | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Every non-secret setting as EVENTPIPE_* -> string: the ConfigMap's data, and the hook Job's
env (the hook runs before the ConfigMap exists). .Values.config overrides the derived
entries, except the two the chart's probes and mounts rely on.
*/}}
{{- define "eventpipe.settings" -}}
{{- $v := .Values }}
{{- $k := $v.kafka }}
{{- $s := dict }}
{{- $_ := set $s "EVENTPIPE_KAFKA_BOOTSTRAP" $k.bootstrap }}
{{- $_ := set $s "EVENTPIPE_TOPIC_PREFIX" $k.topicPrefix }}
{{- $_ := set $s "EVENTPIPE_WORK_PARTITIONS" (int64 $k.workPartitions | toString) }}
{{- $_ := set $s "EVENTPIPE_CONTROL_PARTITIONS" (int64 $k.controlPartitions | toString) }}
{{- $_ := set $s "EVENTPIPE_CHECKPOINT_PARTITIONS" (int64 $k.checkpointPartitions | toString) }}
{{- $_ := set $s "EVENTPIPE_REPLICATION_FACTOR" (int64 $k.replicationFactor | toString) }}
{{- $_ := set $s "EVENTPIPE_SESSION_TIMEOUT_MS" (int64 $k.sessionTimeoutMs | toString) }}
{{- $_ := set $s "EVENTPIPE_HEARTBEAT_INTERVAL_MS" (int64 $k.heartbeatIntervalMs | toString) }}
{{- $_ := set $s "EVENTPIPE_MAX_MESSAGE_BYTES" (int64 $k.maxMessageBytes | toString) }}
{{- $_ := set $s "EVENTPIPE_SECURITY_PROTOCOL" $k.securityProtocol }}
{{- with $k.sasl.mechanism }}{{ $_ := set $s "EVENTPIPE_SASL_MECHANISM" . }}{{ end }}
{{- with $k.sasl.username }}{{ $_ := set $s "EVENTPIPE_SASL_USERNAME" . }}{{ end }}
{{- if $k.tls.caSecret.name }}
{{- $_ := set $s "EVENTPIPE_SSL_CA_LOCATION" (printf "/etc/eventpipe/kafka-ca/%s" $k.tls.caSecret.key) }}
{{- end }}
{{- $_ := set $s "EVENTPIPE_JSONL_ENABLED" (toString $v.storage.jsonl) }}
{{- with $v.storage.elasticsearch.url }}{{ $_ := set $s "EVENTPIPE_ELASTICSEARCH_URL" . }}{{ end }}
{{- with $v.storage.elasticsearch.username }}{{ $_ := set $s "EVENTPIPE_ELASTICSEARCH_USERNAME" . }}{{ end }}
{{- $_ := set $s "EVENTPIPE_ELASTICSEARCH_INDEX_PREFIX" $v.storage.elasticsearch.indexPrefix }}
{{- if $v.storage.elasticsearch.caSecret.name }}
{{- $_ := set $s "EVENTPIPE_ELASTICSEARCH_CA_CERTS" (printf "/etc/eventpipe/elasticsearch-ca/%s" $v.storage.elasticsearch.caSecret.key) }}
{{- end }}
{{- /* The hook applies the migrations with its DDL credentials: the services do not. */}}
{{- if $v.hooks.migrateDatabase }}{{ $_ := set $s "EVENTPIPE_POSTGRES_MIGRATE" "false" }}{{ end }}
{{- $_ := set $s "EVENTPIPE_MAX_DOCUMENT_CHARS" (int64 $v.documents.maxChars | toString) }}
{{- if gt (int $k.minInsyncReplicas) (int $k.replicationFactor) }}
{{- fail (printf "kafka.minInsyncReplicas (%d) is more than kafka.replicationFactor (%d): every write would fail" (int $k.minInsyncReplicas) (int $k.replicationFactor)) }}
{{- end }}
{{- $_ := set $s "EVENTPIPE_MIN_INSYNC_REPLICAS" (int64 $k.minInsyncReplicas | toString) }}
{{- $_ := set $s "EVENTPIPE_WORK_RETENTION_MS" (int64 $k.workRetentionMs | toString) }}
{{- $_ := set $s "EVENTPIPE_FAILED_RETENTION_MS" (int64 $k.failedRetentionMs | toString) }}
{{- $_ := set $s "EVENTPIPE_PARTITION_ASSIGNMENT_STRATEGY" $k.partitionAssignmentStrategy }}
{{- $_ := set $s "EVENTPIPE_LLM_BACKEND" $v.llm.backend }}
{{- with $v.llm.model }}{{ $_ := set $s "EVENTPIPE_LLM_MODEL" . }}{{ end }}
{{- $_ := set $s "EVENTPIPE_LLM_DEVICE" $v.llm.device }}
{{- with $v.llm.baseUrl }}{{ $_ := set $s "EVENTPIPE_LLM_BASE_URL" . }}{{ end }}
{{- $_ := set $s "EVENTPIPE_LOG_LEVEL" $v.logLevel }}
{{- range $key, $value := $v.config }}
{{- $_ := set $s $key (include "eventpipe.str" $value) }}
{{- end }}
{{- /* Fixed by the chart, whatever .Values.config says: the probes and the volume mounts
depend on them. */}}
{{- $_ := set $s "EVENTPIPE_HEALTH_PORT" "8080" }}
{{- $_ := set $s "EVENTPIPE_HEALTH_HOST" "0.0.0.0" }}
{{- $_ := set $s "EVENTPIPE_DATA_DIR" "/data" }}
{{- toYaml $s }}
{{- end }}

{{/* The pod-level securityContext shared by every pod, the hook Job's included. */}}
{{- define "eventpipe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
# The data volume becomes writable for the group; only re-chown when the root is wrong.
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "eventpipe.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* Volumes every pod mounts besides the data directory: /tmp and the Kafka CA. */}}
{{- define "eventpipe.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: {{ .Values.kafka.tls.caSecret.key }}
{{- end }}
{{- with .Values.storage.elasticsearch.caSecret }}
{{- if .name }}
- name: elasticsearch-ca
  secret:
    secretName: {{ .name }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eventpipe.commonVolumeMounts" -}}
# The root filesystem is read-only; Python, spaCy and transformers may need scratch space.
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/eventpipe/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.storage.elasticsearch.caSecret.name }}
- name: elasticsearch-ca
  mountPath: /etc/eventpipe/elasticsearch-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "eventpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eventpipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}
