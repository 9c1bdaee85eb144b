"""The Kubernetes deployment: helm/lakehouse rendered per environment, and helm/airflow's values for the official chart.

helm comes from the Makefile (`make helm`, into .cache/tools/bin); without it these tests fail, never skip.
The official Airflow chart cannot be fetched here, so its values file is checked against the keys read in
the chart's values.yaml (1.19/1.20 line) and against what our chart renders.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.orchestration import WRITERS_POOL

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "lakehouse"
AIRFLOW_VALUES = REPO / "helm" / "airflow"
ENVS = ["dev", "prod"]
RELEASE, NAMESPACE, KUBE_VERSION = "lakehouse", "lakehouse", "1.30.0"
SECRETISH = re.compile(r"(?i)(secret|password|passwd|token|credential|access_key|fernet|store_uri|sql_alchemy)")


def helm() -> str:
    """The helm binary: $HELM, the Makefile's build, or PATH."""
    for candidate in (os.environ.get("HELM"), str(REPO / ".cache" / "tools" / "bin" / "helm"), shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("helm not found: run `make helm` (builds it into .cache/tools/bin) or set HELM")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, check=False)


@cache
def rendered_text(env: str, *sets: str) -> str:
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    args += ["-f", str(CHART / f"values-{env}.yaml")]
    for item in sets:
        args += ["--set", item]
    result = run_helm(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(env: str, *sets: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text(env, *sets)) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def chart_values(env: str) -> dict[str, Any]:
    return merged(CHART / "values.yaml", CHART / f"values-{env}.yaml")


def airflow_values(env: str) -> dict[str, Any]:
    return merged(AIRFLOW_VALUES / "values.yaml", AIRFLOW_VALUES / f"values-{env}.yaml")


def merged(base: Path, overlay: Path) -> dict[str, Any]:
    """helm's merge of two values files: maps merge, everything else (lists too) is replaced."""

    def merge(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            return {**a, **{k: merge(a.get(k), v) for k, v in b.items()}}
        return b

    return merge(yaml.safe_load(base.read_text()), yaml.safe_load(overlay.read_text()) or {})


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec: workloads, and the Spark pod templates inside the spark-conf ConfigMap."""
    specs = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc["spec"]["template"]["spec"]
    conf = one(docs, "ConfigMap", f"{RELEASE}-spark-conf")["data"]
    for key in ("driver-pod-template.yaml", "executor-pod-template.yaml"):
        specs[key] = yaml.safe_load(conf[key])["spec"]
    return specs


def spark_defaults(docs: list[dict[str, Any]]) -> dict[str, str]:
    text = one(docs, "ConfigMap", f"{RELEASE}-spark-conf")["data"]["spark-defaults.conf"]
    return dict(line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize("env", ENVS)
def test_chart_lints_and_renders_into_the_release_namespace(env: str) -> None:
    result = run_helm(
        "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "-f", f"{CHART}/values-{env}.yaml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    docs = rendered(env)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "Job"}
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in docs)


@pytest.mark.parametrize("env", ENVS)
def test_no_secret_is_created_or_rendered(env: str) -> None:
    docs = rendered(env, "s3.endpoint=http://minio:9000")
    assert not [d for d in docs if d["kind"] == "Secret"]
    for name, spec in pod_specs(docs).items():
        secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
        for container in spec["containers"]:
            secret_dirs = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in secret_volumes]
            for var in container.get("env", []):
                if any(var.get("value", "").startswith(f"{d}/") for d in secret_dirs):
                    continue  # the path of a mounted Secret's file (LAKEHOUSE_SERVE_TOKENS), not a secret
                if SECRETISH.search(var["name"]) or var["name"].startswith("AWS_ACCESS"):
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], f"{name}: {var}"
    for key, value in spark_defaults(docs).items():
        if SECRETISH.search(key) or "AWS_ACCESS" in key:
            assert ".secretKeyRef." in key and re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9_.-]+", value), key


@pytest.mark.parametrize(
    "setting",
    [
        "secrets.s3.secretAccessKey=FAKE-SECRET-1",
        "secrets.pii.value=FAKE-SECRET-1",
        "secrets.servingTokens.value=FAKE-SECRET-1",
        "mlflow.backendStoreUri=postgresql://u:FAKE-SECRET-1@db/mlflow",
        "lakehouse.extraEnv.AWS_SECRET_ACCESS_KEY=FAKE-SECRET-1",
        "spark.conf.spark\\.hadoop\\.fs\\.s3a\\.secret\\.key=FAKE-SECRET-1",
        "airflow.pools.lakehouse_writers.password=FAKE-SECRET-1",
    ],
)
def test_a_secret_value_in_values_is_refused(setting: str) -> None:
    """The schema only takes Secret names and keys: a value typed where a reference belongs fails the render."""
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, "--set", setting]
    result = run_helm(*args)
    assert result.returncode != 0 and "FAKE-SECRET-1" not in result.stdout
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


@pytest.mark.parametrize("env", ENVS)
def test_every_pod_is_non_root_hardened_and_bounded(env: str) -> None:
    docs = rendered(env)
    for name, spec in pod_specs(docs).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 10000, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True, name
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
            if "image" in container:  # Spark sets the image, memory and cores of its pods
                assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", container["image"]), container["image"]
                assert not container["image"].endswith(":latest")
                limits = container["resources"]["limits"]
                assert limits["cpu"] and limits["memory"], name
    mlflow = one(docs, "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"]
    assert all(k in mlflow["containers"][0] for k in ("livenessProbe", "readinessProbe", "startupProbe"))
    assert mlflow["automountServiceAccountToken"] is False


@pytest.mark.parametrize("env", ENVS)
def test_spark_defaults_submit_to_kubernetes_with_the_driver_account(env: str) -> None:
    docs, values = rendered(env), chart_values(env)
    conf = spark_defaults(docs)
    sa = f"{RELEASE}-spark"
    assert conf["spark.submit.deployMode"] == "cluster"
    assert conf["spark.kubernetes.namespace"] == NAMESPACE
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == sa
    assert conf["spark.kubernetes.container.image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert conf["spark.kubernetes.driver.secretKeyRef.LAKEHOUSE_PII_SECRET"] == "lakehouse-pii:key"
    assert conf["spark.kubernetes.executor.secretKeyRef.AWS_SECRET_ACCESS_KEY"] == "lakehouse-s3:AWS_SECRET_ACCESS_KEY"
    assert conf["spark.kubernetes.driverEnv.LAKEHOUSE_WAREHOUSE"] == values["lakehouse"]["warehouse"]
    data = one(docs, "ConfigMap", f"{RELEASE}-spark-conf")["data"]
    for role in ("driver", "executor"):
        template = conf[f"spark.kubernetes.{role}.podTemplateFile"]
        assert template == f"{values['spark']['confDir']}/{Path(template).name}" and Path(template).name in data
    one(docs, "ServiceAccount", sa)
    rules = one(docs, "Role", sa)["rules"]
    assert {"pods", "services", "configmaps", "persistentvolumeclaims"} <= set(rules[0]["resources"])
    assert {"create", "delete", "watch", "list"} <= set(rules[0]["verbs"])
    subjects = {s["name"] for s in one(docs, "RoleBinding", sa)["subjects"]}
    assert subjects == {sa, airflow_values(env)["workers"]["serviceAccount"]["name"]}


@pytest.mark.parametrize("env", ENVS)
def test_pools_job_imports_the_writers_pool_with_one_slot(env: str) -> None:
    docs = rendered(env)
    pools = json.loads(one(docs, "ConfigMap", f"{RELEASE}-airflow-pools")["data"]["pools.json"])
    assert list(pools) == [WRITERS_POOL]
    assert pools[WRITERS_POOL]["slots"] == 1 and pools[WRITERS_POOL]["include_deferred"] is False
    assert pools[WRITERS_POOL]["description"]
    job = one(docs, "Job", f"{RELEASE}-airflow-pools")
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert (
        "airflow db check-migrations" in command and "airflow pools import /opt/lakehouse/pools/pools.json" in command
    )


@pytest.mark.parametrize("env", ENVS)
def test_mlflow_serves_s3_artifacts_with_a_postgres_store_from_a_secret(env: str) -> None:
    docs, values = rendered(env), chart_values(env)
    container = one(docs, "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert f"--artifacts-destination={values['mlflow']['artifactsDestination']}" in container["args"]
    assert "--serve-artifacts" in container["args"] and values["mlflow"]["artifactsDestination"].startswith("s3://")
    env_vars = {v["name"]: v for v in container["env"]}
    assert env_vars["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "lakehouse-mlflow-db",
        "key": "uri",
    }
    if values["s3"]["endpoint"]:
        assert env_vars["MLFLOW_S3_ENDPOINT_URL"]["value"] == values["s3"]["endpoint"]
    service = one(docs, "Service", f"{RELEASE}-mlflow")
    assert service["spec"]["ports"][0]["port"] == values["mlflow"]["port"]


# Keys used in helm/airflow/*.yaml, as read in apache/airflow chart/values.yaml (the 1.19/1.20 line, Airflow
# 3.1.x defaults). None: the key exists and its value is free-form (a list, an object, a templated string).
OFFICIAL_CHART_KEYS: dict[str, Any] = {
    "airflowVersion": None,
    "defaultAirflowRepository": None,
    "defaultAirflowTag": None,
    "images": {"airflow": {"repository": None, "tag": None, "digest": None, "pullPolicy": None}},
    "uid": None,
    "gid": None,
    "executor": None,
    "allowPodLaunching": None,
    "redis": {"enabled": None},
    "postgresql": {"enabled": None},
    "statsd": {"enabled": None},
    "createUserJob": {"enabled": None},
    "data": {"metadataSecretName": None},
    "fernetKeySecretName": None,
    "apiSecretKeySecretName": None,
    "jwtSecretName": None,
    "secret": None,
    "extraEnvFrom": None,
    "env": None,
    "dags": {"persistence": {"enabled": None}, "gitSync": {"enabled": None}},
    "config": None,
    "securityContexts": {"pod": None, "containers": None},
    "workers": {
        "serviceAccount": {"create": None, "name": None},
        "resources": None,
        "extraVolumes": None,
        "extraVolumeMounts": None,
    },
    "scheduler": {
        "replicas": None,
        "resources": None,
        "logGroomerSidecar": {"resources": None},
        "podDisruptionBudget": {"enabled": None},
    },
    "dagProcessor": {"enabled": None, "resources": None, "logGroomerSidecar": {"resources": None}},
    "apiServer": {"replicas": None, "resources": None, "podDisruptionBudget": {"enabled": None}},
    "triggerer": {"persistence": {"enabled": None}, "resources": None, "logGroomerSidecar": {"resources": None}},
    "migrateDatabaseJob": {"resources": None},
    "cleanup": {"enabled": None, "resources": None},
    "logs": {"persistence": {"enabled": None, "size": None}},
}


def unknown_keys(values: dict[str, Any], known: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key, value in values.items():
        if key not in known:
            found.append(prefix + key)
        elif known[key] is not None:
            found += unknown_keys(value, known[key], f"{prefix}{key}.")
    return found


@pytest.mark.parametrize("env", ENVS)
def test_airflow_values_use_only_keys_of_the_official_chart(env: str) -> None:
    from airflow.configuration import conf

    for path in (AIRFLOW_VALUES / "values.yaml", AIRFLOW_VALUES / f"values-{env}.yaml"):
        assert unknown_keys(yaml.safe_load(path.read_text()), OFFICIAL_CHART_KEYS) == [], path
    values = airflow_values(env)
    for section, options in values["config"].items():  # rendered into airflow.cfg: Airflow's own options
        assert all(conf.has_option(section, option) for option in options), section
    assert "1.20.0" in (AIRFLOW_VALUES / "values.yaml").read_text() and values["airflowVersion"] == "3.1.8"


def connection_ids() -> set[str]:
    """conn_id="..." in the DAGs and their shared module, plus the PII key's connection."""
    ids = {"lakehouse_pii"}
    for path in [REPO / "lakehouse" / "orchestration.py", *sorted((REPO / "dags").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "conn_id" and isinstance(node.value, ast.Constant):
                ids.add(node.value.value)
    return ids


@pytest.mark.parametrize("env", ENVS)
def test_airflow_values_match_the_image_dags_connections_and_our_chart(env: str) -> None:
    values, ours, docs = airflow_values(env), chart_values(env), rendered(env)
    assert values["executor"] == "KubernetesExecutor" and values["redis"]["enabled"] is False
    image = values["images"]["airflow"]
    assert (image["repository"], image["tag"]) == (ours["image"]["repository"], ours["image"]["tag"])
    assert (
        values["dags"]["gitSync"]["enabled"] is False
        and values["config"]["core"]["dags_folder"] == "/opt/lakehouse/dags"
    )
    assert "spark_default" in connection_ids()
    secret_envs = {s["envName"]: s for s in values["secret"]}
    for conn_id in connection_ids():
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in secret_envs, conn_id
    assert "lakehouse-s3" in values["extraEnvFrom"]
    env_vars = {e["name"]: e["value"] for e in values["env"]}
    assert not [name for name in env_vars if SECRETISH.search(name)]
    conf = spark_defaults(docs)
    for name in ("LAKEHOUSE_WAREHOUSE", "MLFLOW_TRACKING_URI"):
        assert env_vars[name] == conf[f"spark.kubernetes.driverEnv.{name}"], name
    assert env_vars.get("AWS_ENDPOINT_URL", "") == ours["s3"]["endpoint"]
    assert env_vars["SPARK_CONF_DIR"] == ours["spark"]["confDir"]
    volume = next(v for v in values["workers"]["extraVolumes"] if v["name"] == "spark-conf")
    one(docs, "ConfigMap", volume["configMap"]["name"])
    assert {"name": "spark-conf", "mountPath": env_vars["SPARK_CONF_DIR"], "readOnly": True} in values["workers"][
        "extraVolumeMounts"
    ]
    for component in (
        "workers",
        "scheduler",
        "dagProcessor",
        "apiServer",
        "triggerer",
        "migrateDatabaseJob",
        "cleanup",
    ):
        assert values[component]["resources"]["limits"]["memory"], component
    assert values["securityContexts"]["pod"]["runAsNonRoot"] is True
    assert values["securityContexts"]["containers"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("env", ENVS)
def test_the_api_serves_from_the_image_entrypoint_with_probes_tokens_and_its_port(env: str) -> None:
    docs, values = rendered(env), chart_values(env)
    name, serving = f"{RELEASE}-api", values["serving"]
    spec = one(docs, "Deployment", name)["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["serve"] and "command" not in container  # docker/entrypoint.sh under tini
    assert container["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    env_vars = {v["name"]: v for v in container["env"]}
    assert env_vars["LAKEHOUSE_SERVE_HOST"]["value"] == "0.0.0.0"
    assert env_vars["LAKEHOUSE_SERVE_PORT"]["value"] == str(serving["port"])
    assert env_vars["LAKEHOUSE_WAREHOUSE"]["value"] == values["lakehouse"]["warehouse"]
    assert env_vars["MLFLOW_TRACKING_URI"]["value"] == f"http://{RELEASE}-mlflow:{values['mlflow']['port']}"
    assert container["ports"] == [{"name": "http", "containerPort": serving["port"]}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The tokens file is the Secret's key, mounted read-only where LAKEHOUSE_SERVE_TOKENS says.
    tokens = values["secrets"]["servingTokens"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert env_vars["LAKEHOUSE_SERVE_TOKENS"]["value"] == f"{mount['mountPath']}/{tokens['key']}" and mount["readOnly"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tokens")
    assert volume["secret"] == {"secretName": tokens["name"], "items": [{"key": tokens["key"], "path": tokens["key"]}]}
    assert pod["automountServiceAccountToken"] is False and container["resources"] == serving["resources"]

    service = one(docs, "Service", name)
    assert service["spec"]["ports"] == [{"name": "http", "port": serving["port"], "targetPort": "http"}]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    scaling = serving["autoscaling"]
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    if scaling["enabled"]:
        (hpa,) = hpas
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
            scaling["minReplicas"],
            scaling["maxReplicas"],
        )
        target = hpa["spec"]["metrics"][0]["resource"]
        assert target == {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": scaling["targetCPUUtilizationPercentage"]},
        }
        assert "replicas" not in spec  # the HPA owns the count
    else:
        assert hpas == [] and spec["replicas"] == serving["replicas"]


@pytest.mark.parametrize("env", ENVS)
def test_the_api_network_policy_admits_only_the_allowed_peers_and_reaches_dns_mlflow_and_storage(env: str) -> None:
    docs, values = rendered(env), chart_values(env)
    policy = one(docs, "NetworkPolicy", f"{RELEASE}-api")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "serving"
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": "http"}], "from": values["serving"]["networkPolicy"]["from"]}]
    dns, mlflow, *storage = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and dns["to"][0]["podSelector"]["matchLabels"]["k8s-app"]
    assert mlflow["ports"] == [{"port": values["mlflow"]["port"]}]
    assert mlflow["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "mlflow"
    assert storage == values["serving"]["networkPolicy"]["egress"]
    # ... and MLflow's own policy lets the API in.
    peers = one(docs, "NetworkPolicy", f"{RELEASE}-mlflow")["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": policy["podSelector"]["matchLabels"]}} in peers


def test_the_api_without_allowed_peers_takes_no_connection_and_can_be_left_out() -> None:
    closed = one(rendered("prod", "serving.networkPolicy.from=null"), "NetworkPolicy", f"{RELEASE}-api")
    assert closed["spec"]["ingress"] == []
    docs = rendered("prod", "serving.enabled=false")
    assert not [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-api"]
    mlflow_peers = one(docs, "NetworkPolicy", f"{RELEASE}-mlflow")["spec"]["ingress"][0]["from"]
    assert not [
        p for p in mlflow_peers if p["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "serving"
    ]
