{{/* The name of every object, as in deploy/nodekit.yaml. */}}
{{- define "nodekit.name" -}}
{{- default "nodekit" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every object and the DaemonSet's selector. Only the one label of
deploy/nodekit.yaml: the selector of an existing DaemonSet cannot change, so a
cluster moving from the plain manifest to the chart keeps its DaemonSet.
*/}}
{{- define "nodekit.labels" -}}
app.kubernetes.io/name: {{ include "nodekit.name" . }}
{{- end -}}

{{- define "nodekit.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* Collectors in the manifest's order first, then any others by name. */}}
{{- define "nodekit.collectors" -}}
{{- $known := list "pods" "arp" "conntrack" "mdadm" "textfile" "ethtool" -}}
{{- $names := list -}}
{{- range $known -}}
{{- if hasKey $.Values.nodeexp.collectors . -}}{{- $names = append $names . -}}{{- end -}}
{{- end -}}
{{- range $name, $_ := .Values.nodeexp.collectors -}}
{{- if not (has $name $known) -}}{{- $names = append $names $name -}}{{- end -}}
{{- end -}}
{{- join " " $names -}}
{{- end -}}

{{/* NODEEXP_COLLECTOR_<NAME> for collector <name>. */}}
{{- define "nodekit.collectorEnv" -}}
NODEEXP_COLLECTOR_{{ . | upper | replace "-" "_" | replace "." "_" }}
{{- end -}}

{{/* The environment every agent gets from the downward API. */}}
{{- define "nodekit.nodeEnv" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end -}}

{{/* Readiness and liveness probes of an agent's ops port. */}}
{{- define "nodekit.probes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: {{ . }}}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
# Liveness is slower and far more tolerant than readiness: an agent that is
# merely unready (API server or STS away) must not be restarted.
livenessProbe:
  httpGet: {path: /healthz, port: {{ . }}}
  initialDelaySeconds: 10
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 6
{{- end -}}

{{- define "nodekit.validate" -}}
{{- if not (or .Values.metaproxy.enabled .Values.logship.enabled .Values.nodeexp.enabled) -}}
{{- fail "metaproxy, logship and nodeexp are all disabled: enable at least one" -}}
{{- end -}}
{{- range $name, $on := .Values.nodeexp.collectors -}}
{{- if not (kindIs "bool" $on) -}}
{{- fail (printf "nodeexp.collectors.%s is %v; want true or false" $name $on) -}}
{{- end -}}
{{- end -}}
{{- end -}}
