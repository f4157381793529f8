{{/* Shared pieces of the consent-broker chart. */}}
{{- define "consent.labels" -}}
app.kubernetes.io/name: consent-broker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "consent.selector" -}}
app.kubernetes.io/name: consent-broker
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "consent.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-keys" .Release.Name) }}
{{- end }}

{{- define "consent.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/*
Secret files must be mode 0600 and owned by the process (the core refuses wider modes). Kubernetes mounts
secrets group-readable when fsGroup is set, so an init container copies them into a memory emptyDir with
mode 0600 as the runtime user. Args: root, principal (Kafka user / certificate), keys (bool).
*/}}
{{- define "consent.secretInit" -}}
- name: secret-files
  image: {{ include "consent.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command:
    - sh
    - -c
    - >-
      umask 077 && cd /run/consent-src &&
      find . -name '..*' -prune -o \( -type f -o -type l \) -print |
      while read -r f; do install -D -m 0600 "$f" "/etc/consent-core/$f"; done
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities: {drop: [ALL]}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 32Mi}
  volumeMounts:
    - {name: secret-files, mountPath: /etc/consent-core}
    - {name: kafka-user, mountPath: "/run/consent-src/tls/{{ .principal }}", readOnly: true}
    - {name: cluster-ca, mountPath: /run/consent-src/tls/ca, readOnly: true}
    {{- if .keys }}
    - {name: keys, mountPath: /run/consent-src/keys, readOnly: true}
    {{- end }}
{{- end }}

{{- define "consent.secretVolumes" -}}
- name: secret-files
  emptyDir: {medium: Memory, sizeLimit: 4Mi}
- name: kafka-user
  secret:
    secretName: {{ .principal | quote }}
    items:
      - {key: user.crt, path: cert.pem}
      - {key: user.key, path: key.pem}
- name: cluster-ca
  secret:
    secretName: {{ .root.Values.kafka.clusterCaSecret | quote }}
    items:
      - {key: ca.crt, path: ca.pem}
{{- if .keys }}
- name: keys
  secret:
    secretName: {{ include "consent.secretName" .root | quote }}
{{- end }}
{{- end }}

{{- define "consent.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "consent.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}

{{/* The core's settings as CONSENT_* variables (broker/settings.py), for one stage. */}}
{{- define "consent.coreEnv" -}}
- {name: CONSENT_STAGES, value: {{ .stage | quote }}}
- {name: CONSENT_BOOTSTRAP, value: {{ .root.Values.kafka.bootstrap | quote }}}
- {name: CONSENT_TOPIC_PREFIX, value: {{ .root.Values.core.topicPrefix | quote }}}
- {name: CONSENT_APP_ID, value: {{ .root.Values.core.appId | quote }}}
- {name: CONSENT_ROOT_PUBLIC_KEY_HEX, value: {{ required "core.rootPublicKeyHex is required" .root.Values.core.rootPublicKeyHex | quote }}}
- {name: CONSENT_KAFKA_SECURITY, value: SSL}
- {name: CONSENT_TLS_CA_FILE, value: /etc/consent-core/tls/ca/ca.pem}
- {name: CONSENT_TLS_CREDENTIALS_DIR, value: /etc/consent-core/tls}
- {name: CONSENT_MQTT_HOST, value: {{ .root.Values.core.mqtt.host | quote }}}
- {name: CONSENT_MQTT_PORT, value: {{ .root.Values.core.mqtt.port | quote }}}
- {name: CONSENT_MQTT_TLS, value: "true"}
- {name: CONSENT_METRICS_PORT, value: {{ .root.Values.core.metricsPort | quote }}}
- {name: CONSENT_METRICS_HOST, value: 0.0.0.0}
- {name: CONSENT_PSEUDONYM_SECRET_FILE, value: /etc/consent-core/keys/pseudonym.secret}
- {name: CONSENT_CORE_SIGNING_KEY_FILE, value: /etc/consent-core/keys/core-signing.key}
{{- end }}
