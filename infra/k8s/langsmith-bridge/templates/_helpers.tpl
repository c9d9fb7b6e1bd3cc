{{/*
Expand the name of the chart.
*/}}
{{- define "langsmith-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "langsmith-bridge.fullname" -}}
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
Create chart name and version as used by the chart label.
*/}}
{{- define "langsmith-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "langsmith-bridge.labels" -}}
helm.sh/chart: {{ include "langsmith-bridge.chart" . }}
{{ include "langsmith-bridge.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "langsmith-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "langsmith-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "langsmith-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "langsmith-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "langsmith-bridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The ConfigMap holding bridge.toml.
*/}}
{{- define "langsmith-bridge.configMapName" -}}
{{- default (include "langsmith-bridge.fullname" .) .Values.existingConfigMap }}
{{- end }}

{{/*
The claim holding the file state.
*/}}
{{- define "langsmith-bridge.claimName" -}}
{{- default (printf "%s-state" (include "langsmith-bridge.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
Refuse values that cannot work.
*/}}
{{- define "langsmith-bridge.validate" -}}
{{- if not (has .Values.mode (list "cronjob" "deployment")) }}
{{- fail (printf "mode must be cronjob or deployment, not %q" .Values.mode) }}
{{- end }}
{{- if and .Values.sharding.enabled (ne .Values.mode "cronjob") }}
{{- fail "sharding.enabled needs mode: cronjob" }}
{{- end }}
{{- if and .Values.sharding.enabled (lt (int .Values.sharding.shards) 1) }}
{{- fail "sharding.shards must be at least 1" }}
{{- end }}
{{- if and (eq .Values.mode "deployment") (not .Values.serve.tokenSecret) }}
{{- fail "mode: deployment needs serve.tokenSecret: serve refuses to listen beyond loopback without a bearer token (--token-file)" }}
{{- end }}
{{- if not .Values.adminKey.existingSecret }}
{{- fail "adminKey.existingSecret must name the Secret holding the LangSmith admin key" }}
{{- end }}
{{- if and (not .Values.existingConfigMap) (not .Values.config) }}
{{- fail "set config (the bridge.toml text) or existingConfigMap" }}
{{- end }}
{{- end }}

{{/*
The pod's annotations: a checksum of the rendered config rolls the Deployment when it changes.
*/}}
{{- define "langsmith-bridge.podMetadata" -}}
{{- $annotations := dict }}
{{- if not .Values.existingConfigMap }}
{{- $_ := set $annotations "checksum/config" (.Values.config | sha256sum) }}
{{- end }}
{{- $annotations = merge $annotations (.Values.podAnnotations | default dict) -}}
annotations:
  {{- toYaml $annotations | nindent 2 }}
labels:
  {{- include "langsmith-bridge.labels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The container's arguments (the image's entrypoint is `langsmith-bridge`). Global options go
before the command: `-c FILE --log-format json --log-level LEVEL run|serve ...`.
*/}}
{{- define "langsmith-bridge.args" -}}
{{- $args := list "-c" "/etc/langsmith-bridge/bridge.toml" "--log-format" "json" "--log-level" .Values.logLevel }}
{{- if eq .Values.mode "deployment" }}
{{- $args = concat $args (list "serve" "--host" "0.0.0.0" "--port" (toString .Values.serve.port) "--every" .Values.serve.every) }}
{{- if .Values.serve.tokenSecret }}
{{- $args = concat $args (list "--token-file" "/etc/langsmith-bridge/token/token") }}
{{- end }}
{{- else }}
{{- $args = append $args "run" }}
{{- if .Values.sharding.enabled }}
{{- $args = concat $args (list "--shard" (printf "$(JOB_COMPLETION_INDEX)/%d" (int .Values.sharding.shards))) }}
{{- end }}
{{- end }}
{{- $args = concat $args .Values.extraArgs }}
{{- toYaml $args }}
{{- end }}

{{/*
The pod spec shared by the CronJob's Job and the Deployment.
*/}}
{{- define "langsmith-bridge.podSpec" -}}
{{- $deployment := eq .Values.mode "deployment" -}}
serviceAccountName: {{ include "langsmith-bridge.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if not $deployment }}
restartPolicy: Never
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
containers:
  - name: bridge
    image: {{ include "langsmith-bridge.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      {{- include "langsmith-bridge.args" . | nindent 6 }}
    env:
      - name: LANGSMITH_ADMIN_KEY
        valueFrom:
          secretKeyRef:
            name: {{ .Values.adminKey.existingSecret }}
            key: {{ .Values.adminKey.key }}
      - name: LANGSMITH_BRIDGE_CONFIG
        value: /etc/langsmith-bridge/bridge.toml
      - name: HOME
        value: /tmp
      - name: TMPDIR
        value: /tmp
      {{- with .Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with .Values.extraEnvFrom }}
    envFrom:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if $deployment }}
    ports:
      - name: http
        containerPort: {{ .Values.serve.port }}
        protocol: TCP
    livenessProbe:
      {{- toYaml .Values.serve.livenessProbe | nindent 6 }}
    readinessProbe:
      {{- toYaml .Values.serve.readinessProbe | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/langsmith-bridge/bridge.toml
        subPath: bridge.toml
        readOnly: true
      - name: tmp
        mountPath: /tmp
      - name: state
        mountPath: {{ .Values.persistence.mountPath }}
      {{- if and $deployment .Values.serve.tokenSecret }}
      - name: token
        mountPath: /etc/langsmith-bridge/token
        readOnly: true
      {{- end }}
      {{- with .Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "langsmith-bridge.configMapName" . }}
      items:
        - key: bridge.toml
          path: bridge.toml
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
  - name: state
    {{- if .Values.persistence.enabled }}
    persistentVolumeClaim:
      claimName: {{ include "langsmith-bridge.claimName" . }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  {{- if and $deployment .Values.serve.tokenSecret }}
  - name: token
    secret:
      secretName: {{ .Values.serve.tokenSecret }}
      defaultMode: 0440
      items:
        - key: {{ .Values.serve.tokenSecretKey }}
          path: token
  {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
