"""The Helm chart, offline: lint and render with the Helm v4 library (helm-python-sdk), every
rendered manifest validated against the Kubernetes OpenAPI schemas in strict mode (unknown
fields rejected) by kubernetes-validate, the CRD kinds (ScaledObject, ServiceMonitor), which it
has no schema for, checked field by field here, and wrong values refused by values.schema.json."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "eventpipe"
RELEASE = "demo"
NAMESPACE = "pipelines"
FULLNAME = f"{RELEASE}-eventpipe"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the
# validator knows.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
CRD_KINDS = {"ScaledObject", "ServiceMonitor"}

SERVICES = ["checkpoint", "dp", "ingest", "linker", "llm", "ner", "sink"]
DATA_SERVICES = {"ingest", "sink", "checkpoint", "linker"}
# Owners of files in the data directory: one replica at most, never two even in a rollout.
SINGLETONS = {"sink", "checkpoint", "linker"}
RECOMMENDED_LABELS = {"name", "instance", "version", "component", "part-of", "managed-by"}

# Every optional feature at once.
ALL_FEATURES: dict[str, Any] = {
    "kafka": {
        "bootstrap": "my-cluster-kafka-bootstrap.kafka.svc:9093",
        "workPartitions": 6,
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "eventpipe",
                 "passwordSecret": {"name": "eventpipe", "key": "password"}},
        "tls": {"caSecret": {"name": "my-cluster-cluster-ca-cert", "key": "ca.crt"}},
    },
    "storage": {"elasticsearch": {"url": "https://es-http.search.svc:9200",
                                  "username": "eventpipe"}},
    "secrets": {"existingSecret": "eventpipe-credentials"},
    "persistence": {"existingClaim": "eventpipe-data", "accessModes": ["ReadWriteMany"]},
    "config": {"EVENTPIPE_STAGE_BATCH_SIZE": 32, "EVENTPIPE_FSYNC": True},
    "services": {"ner": {"replicaCount": 6, "env": {"EVENTPIPE_POLL_TIMEOUT_S": 0.5}},
                 "llm": {"nodeSelector": {"gpu": "true"}}},
    "hooks": {"migrateDatabase": True},
    "keda": {"enabled": True, "services": ["ingest", "ner", "dp", "llm"],
             "maxReplicaCount": 10, "authenticationRef": "kafka-scram"},
    "metrics": {"serviceMonitor": {"enabled": True,
                                   "labels": {"release": "kube-prometheus-stack"}}},
    "imagePullSecrets": [{"name": "regcred"}],
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployments by service name."""
    return {name.removeprefix(f"{FULLNAME}-"): doc
            for name, doc in by_kind(docs, "Deployment").items()}


def validate_strictly(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}) "
                            f"at {where}: {exc.message}")


@pytest.fixture(scope="module")
def default_docs(chart: helm.Chart) -> list[dict[str, Any]]:
    return render(chart)


@pytest.fixture(scope="module")
def full_docs(chart: helm.Chart) -> list[dict[str, Any]]:
    return render(chart, ALL_FEATURES)


# --- Lint and validate -------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, ALL_FEATURES], ids=["defaults", "all-features"])
def test_chart_lints_clean(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert not problems and not report["errors"], report


def test_the_validator_is_strict() -> None:
    """Guards the tests below: an unknown field must fail validation."""
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {},
           "spec": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)


def test_defaults_render_valid_manifests(default_docs: list[dict[str, Any]]) -> None:
    validate_strictly(default_docs)
    kinds = sorted(doc["kind"] for doc in default_docs)
    assert kinds == sorted(["ConfigMap", "PersistentVolumeClaim", "Job"]
                           + ["Deployment", "Service"] * len(SERVICES))
    assert sorted(deployments(default_docs)) == SERVICES


def test_all_features_render_valid_manifests(full_docs: list[dict[str, Any]]) -> None:
    validate_strictly(full_docs)
    kinds = {doc["kind"] for doc in full_docs}
    assert {"ScaledObject", "ServiceMonitor", "Job", "ConfigMap"} <= kinds
    # An existing Secret and an existing claim: the chart makes neither.
    assert "Secret" not in kinds and "PersistentVolumeClaim" not in kinds


def test_every_object_has_the_recommended_labels(full_docs: list[dict[str, Any]]) -> None:
    for doc in full_docs:
        labels = doc["metadata"]["labels"]
        present = {k.removeprefix("app.kubernetes.io/") for k in labels
                   if k.startswith("app.kubernetes.io/")}
        assert present == RECOMMENDED_LABELS, (doc["kind"], labels)
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/part-of"] == "eventpipe"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


# --- Pods --------------------------------------------------------------------------------------


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("which", ["defaults", "all-features"])
def test_pods_are_locked_down(which: str, default_docs: list[dict[str, Any]],
                              full_docs: list[dict[str, Any]]) -> None:
    docs = default_docs if which == "defaults" else full_docs
    for name, pod in pod_specs(docs):
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        [container] = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        assert container["resources"].get("requests"), name


def test_probes_and_ports(default_docs: list[dict[str, Any]]) -> None:
    for service, deployment in deployments(default_docs).items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [service]
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/healthz")]:
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, service
    services = by_kind(default_docs, "Service")
    for service in SERVICES:
        svc = services[f"{FULLNAME}-{service}"]
        assert svc["spec"]["ports"][0]["name"] == "http"
        assert svc["spec"]["ports"][0]["port"] == 8080
        selector = svc["spec"]["selector"]
        pod_labels = deployments(default_docs)[service]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()


def test_data_volume_and_replicas(default_docs: list[dict[str, Any]]) -> None:
    claim = f"{FULLNAME}-data"
    pvc = by_kind(default_docs, "PersistentVolumeClaim")[claim]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for service, deployment in deployments(default_docs).items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        data = next(v for v in pod["volumes"] if v["name"] == "data")
        if service in DATA_SERVICES:
            assert data["persistentVolumeClaim"]["claimName"] == claim, service
            # ReadWriteOnce: the pods that share the claim go to one node.
            term = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert term[0]["topologyKey"] == "kubernetes.io/hostname"
            assert term[0]["labelSelector"]["matchLabels"].items() <= (
                spec["template"]["metadata"]["labels"].items())
        else:
            assert "emptyDir" in data and "affinity" not in pod, service
        assert spec["replicas"] == 1
        if service in SINGLETONS:
            assert spec["strategy"]["type"] == "Recreate", service
        else:
            assert "strategy" not in spec, service  # RollingUpdate


def test_settings_in_a_config_map_and_credentials_in_secrets(
        chart: helm.Chart, default_docs: list[dict[str, Any]],
        full_docs: list[dict[str, Any]]) -> None:
    config = by_kind(default_docs, "ConfigMap")[f"{FULLNAME}-config"]["data"]
    assert config["EVENTPIPE_KAFKA_BOOTSTRAP"] == "my-cluster-kafka-bootstrap:9092"
    assert config["EVENTPIPE_MAX_MESSAGE_BYTES"] == "8000000"  # not 8e+06
    assert config["EVENTPIPE_HEALTH_PORT"] == "8080"
    assert int(config["EVENTPIPE_SESSION_TIMEOUT_MS"]) >= 6000
    assert not [k for k in config if "PASSWORD" in k or "DSN" in k or "KEY" in k]

    full = by_kind(full_docs, "ConfigMap")[f"{FULLNAME}-config"]["data"]
    assert full["EVENTPIPE_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert full["EVENTPIPE_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert full["EVENTPIPE_SSL_CA_LOCATION"] == "/etc/eventpipe/kafka-ca/ca.crt"
    assert full["EVENTPIPE_STAGE_BATCH_SIZE"] == "32"
    assert full["EVENTPIPE_FSYNC"] == "true"
    for service, deployment in deployments(full_docs).items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        sources = [next(iter(s.values()))["name"] for s in container["envFrom"]]
        assert sources == [f"{FULLNAME}-config", "eventpipe-credentials"], service
        env = {e["name"]: e for e in container["env"]}
        assert env["EVENTPIPE_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "eventpipe", "key": "password"}
        ca = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/eventpipe/kafka-ca"]
        assert ca and ca[0]["readOnly"] is True
    ner = deployments(full_docs)["ner"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "EVENTPIPE_POLL_TIMEOUT_S", "value": "0.5"} in ner["env"]

    # Credentials given in values: a Secret (never the ConfigMap), and a hook-time copy.
    docs = render(chart, {"secrets": {"postgresDsn": "postgresql://u:p@db:5432/e"},
                          "hooks": {"migrateDatabase": True}})
    validate_strictly(docs)
    secrets = by_kind(docs, "Secret")
    assert set(secrets[f"{FULLNAME}-credentials"]["data"]) == {"EVENTPIPE_POSTGRES_DSN"}
    hook_secret = secrets[f"{FULLNAME}-hook-credentials"]
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"


def test_the_hook_job_prepares_kafka_and_postgres(
        default_docs: list[dict[str, Any]], full_docs: list[dict[str, Any]]) -> None:
    [job] = by_kind(default_docs, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-1] == "set -e; eventpipe topics create"
    # Hooks run before the ConfigMap exists: the settings are inline.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EVENTPIPE_KAFKA_BOOTSTRAP"] == "my-cluster-kafka-bootstrap:9092"
    assert "envFrom" not in container

    [job] = by_kind(full_docs, "Job").values()
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-1] == "set -e; eventpipe topics create; eventpipe db migrate"
    assert container["envFrom"] == [{"secretRef": {"name": "eventpipe-credentials"}}]


# --- Optional CRDs: checked here, the validator has no schema for them ---------------------------


def test_keda_scaled_objects(full_docs: list[dict[str, Any]]) -> None:
    scaled = by_kind(full_docs, "ScaledObject")
    targets = deployments(full_docs)
    topics = {"ingest": "submissions", "ner": "docs", "dp": "ner", "llm": "dp"}
    assert sorted(scaled) == sorted(f"{FULLNAME}-{s}" for s in topics)
    for service, topic in topics.items():
        obj = scaled[f"{FULLNAME}-{service}"]
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == targets[service]["metadata"]["name"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        # Capped at the work partitions (6), not keda.maxReplicaCount (10).
        assert spec["maxReplicaCount"] == 6
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        [trigger] = spec["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        # KEDA's trigger metadata is a map of strings.
        assert all(isinstance(v, str) for v in meta.values()), meta
        assert meta["bootstrapServers"] == ALL_FEATURES["kafka"]["bootstrap"]
        assert meta["consumerGroup"] == f"eventpipe-{service}"
        assert meta["topic"] == f"eventpipe.{topic}"
        assert int(meta["lagThreshold"]) > 0
        # SASL_SSL with SCRAM-SHA-512, in KEDA's words.
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
        assert trigger["authenticationRef"] == {"name": "kafka-scram"}
        # KEDA owns the replica count: the Deployment must not fight it on upgrades.
        assert "replicas" not in targets[service]["spec"]
    for service in SINGLETONS:
        assert targets[service]["spec"]["replicas"] == 1


def test_keda_on_a_plaintext_cluster(chart: helm.Chart) -> None:
    docs = render(chart, {"keda": {"enabled": True}})
    scaled = by_kind(docs, "ScaledObject")
    assert sorted(scaled) == sorted(f"{FULLNAME}-{s}" for s in ("ner", "dp", "llm"))
    for obj in scaled.values():
        [trigger] = obj["spec"]["triggers"]
        assert "sasl" not in trigger["metadata"] and "tls" not in trigger["metadata"]
        assert "authenticationRef" not in trigger
        assert obj["spec"]["maxReplicaCount"] == 3
    with pytest.raises(helm.HelmRenderError, match="minReplicaCount"):
        render(chart, {"keda": {"enabled": True, "minReplicaCount": 4}})


def test_service_monitor(full_docs: list[dict[str, Any]]) -> None:
    [monitor] = by_kind(full_docs, "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert spec["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s",
                                  "scrapeTimeout": "10s"}]
    selected = [svc for svc in by_kind(full_docs, "Service").values()
                if spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()]
    assert len(selected) == len(SERVICES)
    assert all(svc["spec"]["ports"][0]["name"] == "http" for svc in selected)


# --- Wrong values fail ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"services": {"sink": {"replicaCount": 2}}}, "/services/sink/replicaCount"),
        ({"services": {"checkpoint": {"replicaCount": 3}}}, "/services/checkpoint/replicaCount"),
        ({"services": {"linker": {"replicaCount": 2}}}, "/services/linker/replicaCount"),
        ({"services": {"ner": {"replicaCount": -1}}}, "/services/ner/replicaCount"),
        ({"services": {"dp": {"replicaCount": "2"}}}, "/services/dp/replicaCount"),
        ({"kafka": {"workPartitions": "three"}}, "/kafka/workPartitions"),
        ({"kafka": {"sessionTimeoutMs": 3000}}, "/kafka/sessionTimeoutMs"),
        ({"kafka": {"bootstrap": ""}}, "/kafka/bootstrap"),
        ({"kafka": {"securityProtocol": "SASL_SSL"}}, "/kafka/sasl/mechanism"),
        ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
        ({"llm": {"backend": "gpt"}}, "/llm/backend"),
        ({"keda": {"services": ["sink"]}}, "/keda/services"),
        ({"keda": {"services": ["linker"]}}, "/keda/services"),
        ({"secrets": {"existingSecret": "x", "postgresDsn": "postgresql://a"}},
         "/secrets/postgresDsn"),
        ({"services": {"search": {"replicaCount": 1}}}, "search"),
        ({"persistance": {}}, "persistance"),
        ({"config": {"STAGE_BATCH_SIZE": "1"}}, "STAGE_BATCH_SIZE"),
    ],
)
def test_wrong_values_fail_the_schema(chart: helm.Chart, values: dict[str, Any],
                                      complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(values)
    # And so the install itself (rendering validates the values first).
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


def test_more_stage_replicas_than_partitions_fail(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape("more than kafka.workPartitions")):
        render(chart, {"services": {"dp": {"replicaCount": 4}}})
    render(chart, {"services": {"dp": {"replicaCount": 4}}, "kafka": {"workPartitions": 4}})
