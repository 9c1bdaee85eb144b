{{/* Names: "<release>" when the release is called like the chart, else "<release>-lakehouse". */}}
{{- define "lakehouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lakehouse.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* An image reference from {repository, tag, digest}: the digest wins when set. */}}
{{- define "lakehouse.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (required "image tag must be pinned" .tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The platform image (Airflow, Java, Spark, jars and this project) unless a component names its own. */}}
{{- define "lakehouse.mlflowImage" -}}
{{- include "lakehouse.image" (mergeOverwrite (deepCopy .Values.image) .Values.mlflow.image) -}}
{{- end -}}
{{- define "lakehouse.sparkImage" -}}
{{- include "lakehouse.image" (mergeOverwrite (deepCopy .Values.image) .Values.spark.image) -}}
{{- end -}}

{{- define "lakehouse.mlflowName" -}}{{ include "lakehouse.fullname" . }}-mlflow{{- end -}}
{{- define "lakehouse.sparkName" -}}{{ include "lakehouse.fullname" . }}-spark{{- end -}}

{{/* The security context of every container: no privilege, no capability, read-only root. */}}
{{- define "lakehouse.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "lakehouse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.uid }}
runAsGroup: {{ .Values.gid }}
fsGroup: {{ .Values.gid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* MLflow's tracking URI as the Spark driver and Airflow reach it. */}}
{{- define "lakehouse.trackingUri" -}}
{{- if .Values.lakehouse.trackingUri -}}
{{- .Values.lakehouse.trackingUri -}}
{{- else -}}
{{- printf "http://%s:%v" (include "lakehouse.mlflowName" .) .Values.mlflow.port -}}
{{- end -}}
{{- end -}}

{{/* The service's names, short and qualified, with and without the port; MLflow 3 checks Host headers. */}}
{{- define "lakehouse.mlflowAllowedHosts" -}}
{{- $name := include "lakehouse.mlflowName" . -}}
{{- $hosts := list "localhost" "localhost:*" "127.0.0.1:*" -}}
{{- range $host := list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) -}}
{{- $hosts = append $hosts $host -}}
{{- $hosts = append $hosts (printf "%s:%v" $host $.Values.mlflow.port) -}}
{{- end -}}
{{- concat $hosts .Values.mlflow.extraAllowedHosts | join "," -}}
{{- end -}}

{{/* Spark pod template: Spark adds the containers' image, args, memory and env; this adds the hardening
     Spark conf cannot express. Spark mounts its own local dirs; /tmp is for Python. */}}
{{- define "lakehouse.sparkPodTemplate" -}}
apiVersion: v1
kind: Pod
metadata:
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: spark
spec:
  securityContext:
    {{- include "lakehouse.podSecurityContext" . | nindent 4 }}
  containers:
    - name: spark
      securityContext:
        allowPrivilegeEscalation: false
        privileged: false
        readOnlyRootFilesystem: {{ .Values.spark.readOnlyRootFilesystem }}
        runAsNonRoot: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
{{- end -}}

{{/* Pod hardening of a SparkApplication's driver or executor (the operator's own fields). */}}
{{- define "lakehouse.sparkOperatorPod" -}}
labels:
  app.kubernetes.io/instance: {{ .Release.Name }}
  app.kubernetes.io/component: spark
podSecurityContext:
  {{- include "lakehouse.podSecurityContext" . | nindent 2 }}
securityContext:
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: {{ .Values.spark.readOnlyRootFilesystem }}
  runAsNonRoot: true
  capabilities:
    drop: ["ALL"]
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* S3 settings and credential references for Spark pods started by the operator. */}}
{{- define "lakehouse.sparkOperatorS3Env" -}}
- {name: AWS_REGION, value: {{ .Values.s3.region | quote }}}
{{- with .Values.s3.endpoint }}
- {name: AWS_ENDPOINT_URL, value: {{ . | quote }}}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.s3.name }}, key: {{ .Values.secrets.s3.accessKeyIdKey }}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.s3.name }}, key: {{ .Values.secrets.s3.secretAccessKeyKey }}}
{{- end -}}

{{- define "lakehouse.servingName" -}}{{ include "lakehouse.fullname" . }}-api{{- end -}}
