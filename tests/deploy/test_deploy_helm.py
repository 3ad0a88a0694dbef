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
CRD_KINDS = {"ScaledObject", "ServiceMonitor", "KafkaTopic", "KafkaUser"}

SERVICES = ["checkpoint", "dp", "ingest", "linker", "llm", "ner", "sink"]
DATA_SERVICES = {"ingest", "sink", "checkpoint", "linker"}
# Owners of files in the data directory: one replica at most, never two even in a rollout.
SINGLETONS = {"sink", "checkpoint", "linker"}
# The services that scale with the work topics' partitions.
STAGES = {"ingest", "ner", "dp", "llm"}
RECOMMENDED_LABELS = {"name", "instance", "version", "component", "part-of", "managed-by"}

# The keys of the credentials Secret each service gets (the SASL password is from Strimzi's
# KafkaUser Secret in ALL_FEATURES).
STORE_KEYS = {"EVENTPIPE_POSTGRES_DSN", "EVENTPIPE_ELASTICSEARCH_PASSWORD",
              "EVENTPIPE_ELASTICSEARCH_API_KEY"}
SERVICE_SECRET_KEYS: dict[str, set[str]] = {
    "ingest": set(), "ner": set(), "dp": set(), "checkpoint": set(),
    "llm": {"EVENTPIPE_LLM_API_KEY"}, "sink": STORE_KEYS, "linker": STORE_KEYS}

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
    "strimzi": {"cluster": "my-cluster", "user": {"enabled": True}},
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
    """The pipeline services' workloads (Deployments and StatefulSets) by service name; the
    console has tests of its own (tests/console/test_console_chart.py)."""
    return {name.removeprefix(f"{FULLNAME}-"): doc
            for kind in ("Deployment", "StatefulSet")
            for name, doc in by_kind(docs, kind).items() if name != f"{FULLNAME}-console"}


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
    assert kinds == sorted(["ConfigMap", "PersistentVolumeClaim", "Job", "NetworkPolicy",
                            "ServiceAccount"]
                           + ["Deployment", "Service", "NetworkPolicy",
                              "PodDisruptionBudget"]  # the console
                           + ["Service"] * len(SERVICES)
                           + ["Deployment", "PodDisruptionBudget"] * len(STAGES)
                           + ["StatefulSet"] * len(SINGLETONS))
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
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
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
        assert container["resources"]["limits"]["memory"], name
        if doc_kind(name) != "Job":
            # The chart's own account, which has no token to mount (the hook runs before it
            # exists and keeps the namespace's default, without a token as well).
            assert pod["serviceAccountName"] == FULLNAME, name


def doc_kind(name: str) -> str:
    return name.split("/", 1)[0]


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
            # Replicas of a stage spread over nodes and zones, never blocking.
            spread = pod["topologySpreadConstraints"]
            assert {c["topologyKey"] for c in spread} == {
                "kubernetes.io/hostname", "topology.kubernetes.io/zone"}
            assert {c["whenUnsatisfiable"] for c in spread} == {"ScheduleAnyway"}
        assert spec["replicas"] == 1
        if service in SINGLETONS:
            assert deployment["kind"] == "StatefulSet", service
            assert spec["serviceName"] == f"{FULLNAME}-{service}"
            assert spec["podManagementPolicy"] == "OrderedReady"
        else:
            assert deployment["kind"] == "Deployment", service
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
        # The settings whole; of the credentials, only the keys this service reads.
        assert container["envFrom"] == [{"configMapRef": {"name": f"{FULLNAME}-config"}}]
        env = {e["name"]: e for e in container["env"]}
        assert env["EVENTPIPE_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "eventpipe", "key": "password"}
        refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]
                if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"]
                == "eventpipe-credentials"}
        assert refs == SERVICE_SECRET_KEYS[service], service
        ca = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/eventpipe/kafka-ca"]
        assert ca and ca[0]["readOnly"] is True
    ner = deployments(full_docs)["ner"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "EVENTPIPE_POLL_TIMEOUT_S", "value": "0.5"} in ner["env"]

    # Credentials given in values: a Secret (never the ConfigMap), and a hook-time copy.
    docs = render(chart, {"secrets": {"postgresDsn": "postgresql://u:p@db:5432/e",
                                      "postgresMigrationDsn": "postgresql://ddl:p@db:5432/e"},
                          "hooks": {"migrateDatabase": True}})
    validate_strictly(docs)
    secrets = by_kind(docs, "Secret")
    assert set(secrets[f"{FULLNAME}-credentials"]["data"]) == {
        "EVENTPIPE_POSTGRES_DSN", "EVENTPIPE_POSTGRES_MIGRATION_DSN"}
    hook_secret = secrets[f"{FULLNAME}-hook-credentials"]
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    # The migrations run in the hook only, with the DDL user; the services skip them.
    config = by_kind(docs, "ConfigMap")[f"{FULLNAME}-config"]["data"]
    assert config["EVENTPIPE_POSTGRES_MIGRATE"] == "false"
    [job] = by_kind(docs, "Job").values()
    [container] = job["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "valueFrom" in e}
    assert refs["EVENTPIPE_POSTGRES_MIGRATION_DSN"] == {
        "name": f"{FULLNAME}-hook-credentials", "key": "EVENTPIPE_POSTGRES_MIGRATION_DSN"}
    for service, workload in deployments(docs).items():
        [container] = workload["spec"]["template"]["spec"]["containers"]
        keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container.get("env", [])}
        assert keys == ({"EVENTPIPE_POSTGRES_DSN"} if service in {"sink", "linker"}
                        else set()), service


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
    assert "envFrom" not in container
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "valueFrom" in e}
    assert refs == {
        "EVENTPIPE_SASL_PASSWORD": {"name": "eventpipe", "key": "password"},
        "EVENTPIPE_POSTGRES_DSN": {"name": "eventpipe-credentials",
                                   "key": "EVENTPIPE_POSTGRES_DSN", "optional": True},
        "EVENTPIPE_POSTGRES_MIGRATION_DSN": {"name": "eventpipe-credentials",
                                             "key": "EVENTPIPE_POSTGRES_MIGRATION_DSN",
                                             "optional": True}}


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
        assert obj["spec"]["maxReplicaCount"] == 12
        # Above one batch of the stage (64 messages): a replica takes a batch at a time.
        assert int(obj["spec"]["triggers"][0]["metadata"]["lagThreshold"]) > 64
    with pytest.raises(helm.HelmRenderError, match="minReplicaCount"):
        render(chart, {"keda": {"enabled": True, "minReplicaCount": 13}})


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
    assert len(selected) == len(SERVICES) + 1  # and the console's
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
        render(chart, {"services": {"dp": {"replicaCount": 13}}})
    render(chart, {"services": {"dp": {"replicaCount": 13}}, "kafka": {"workPartitions": 13}})


# --- Production defaults -----------------------------------------------------------------------


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(workload, service or "setup", container) of every pod template."""
    for name, pod in pod_specs(docs):
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield name, container["name"], container


@pytest.mark.parametrize("which", ["defaults", "all-features"])
def test_every_container_has_a_memory_limit(which: str, default_docs: list[dict[str, Any]],
                                            full_docs: list[dict[str, Any]]) -> None:
    docs = default_docs if which == "defaults" else full_docs
    found = list(containers(docs))
    assert len(found) == len(SERVICES) + 2  # and the hook Job and the console
    for name, _, container in found:
        limits = container["resources"]["limits"]
        requests = container["resources"]["requests"]
        assert limits["memory"] and requests["memory"], name


def test_a_disruption_budget_covers_every_stage(default_docs: list[dict[str, Any]]) -> None:
    budgets = by_kind(default_docs, "PodDisruptionBudget").values()
    for service, workload in deployments(default_docs).items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets
                    if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        if service in STAGES:
            [budget] = covering
            assert budget["spec"]["maxUnavailable"] == 1, service
        else:
            # One replica at most: a budget would only block node drains.
            assert not covering, service
    # The console scales by replicas as well.
    console = by_kind(default_docs, "Deployment")[f"{FULLNAME}-console"]
    labels = console["spec"]["template"]["metadata"]["labels"]
    [budget] = [b for b in budgets
                if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_singletons_are_stateful_sets(default_docs: list[dict[str, Any]],
                                          full_docs: list[dict[str, Any]]) -> None:
    for docs in (default_docs, full_docs):
        kinds = {service: w["kind"] for service, w in deployments(docs).items()}
        assert {s for s, k in kinds.items() if k == "StatefulSet"} == SINGLETONS
        assert {s for s, k in kinds.items() if k == "Deployment"} == STAGES


def secret_sources(pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Every (Secret, key) a container can read: env references, envFrom and volumes."""
    found = set()
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            found.add(f"{ref['name']}/{ref['key']}")
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            found.add(f"{source['secretRef']['name']}/*")
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            found.add(f"{volume['secret']['secretName']}/(volume)")
    return found


@pytest.mark.parametrize("secrets", [
    {"postgresDsn": "postgresql://u:p@db:5432/e", "elasticsearchPassword": "pw",
     "saslPassword": "k", "llmApiKey": "sk"},
    {"existingSecret": "eventpipe-credentials"},
], ids=["chart-secret", "existing-secret"])
def test_ner_and_dp_get_no_database_secret(chart: helm.Chart, secrets: dict[str, str]) -> None:
    docs = render(chart, {"secrets": secrets})
    validate_strictly(docs)
    for service, workload in deployments(docs).items():
        pod = workload["spec"]["template"]["spec"]
        [container] = pod["containers"]
        sources = secret_sources(pod, container)
        assert not any(s.endswith("/*") for s in sources), (service, sources)
        keys = {s.split("/", 1)[1] for s in sources}
        if service in {"ner", "dp", "ingest", "checkpoint"}:
            assert keys <= {"EVENTPIPE_SASL_PASSWORD"}, (service, keys)
        assert "EVENTPIPE_POSTGRES_MIGRATION_DSN" not in keys, service
        assert ("EVENTPIPE_POSTGRES_DSN" in keys) == (service in {"sink", "linker"}), service


def test_topics_default_to_production_settings(default_docs: list[dict[str, Any]]) -> None:
    """The hook creates the topics from these: 12 work partitions, configs carried."""
    config = by_kind(default_docs, "ConfigMap")[f"{FULLNAME}-config"]["data"]
    [job] = by_kind(default_docs, "Job").values()
    [container] = job["spec"]["template"]["spec"]["containers"]
    hook_env = {e["name"]: e.get("value") for e in container["env"]}
    for settings in (config, hook_env):
        assert int(settings["EVENTPIPE_WORK_PARTITIONS"]) >= 12
        assert settings["EVENTPIPE_REPLICATION_FACTOR"] == "3"
        assert settings["EVENTPIPE_MIN_INSYNC_REPLICAS"] == "2"
        assert settings["EVENTPIPE_WORK_RETENTION_MS"] == str(7 * 24 * 3600 * 1000)
        assert settings["EVENTPIPE_FAILED_RETENTION_MS"] == str(30 * 24 * 3600 * 1000)
        assert settings["EVENTPIPE_MAX_MESSAGE_BYTES"] == "8000000"
        assert settings["EVENTPIPE_PARTITION_ASSIGNMENT_STRATEGY"] == "cooperative-sticky"
        assert int(settings["EVENTPIPE_MAX_DOCUMENT_CHARS"]) > 0


def test_grace_periods_per_service(default_docs: list[dict[str, Any]]) -> None:
    grace = {service: w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
             for service, w in deployments(default_docs).items()}
    assert grace["linker"] > grace["dp"] > grace["ner"] > grace["ingest"]
    assert len(set(grace.values())) > 1


def test_network_policy_and_service_account(default_docs: list[dict[str, Any]],
                                            chart: helm.Chart) -> None:
    [account] = by_kind(default_docs, "ServiceAccount").values()
    assert account["automountServiceAccountToken"] is False
    policy = by_kind(default_docs, "NetworkPolicy")[FULLNAME]  # and the console's own
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    for workload in deployments(default_docs).values():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    docs = render(chart, {"networkPolicy": {"egress": {"enabled": True, "to": [
        {"ipBlock": {"cidr": "10.0.0.0/8"}}]}}})
    validate_strictly(docs)
    policy = by_kind(docs, "NetworkPolicy")[FULLNAME]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [dns, rest] = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert 9092 in {p["port"] for p in rest["ports"]}
    docs = render(chart, {"networkPolicy": {"enabled": False},
                          "serviceAccount": {"create": False}})
    assert not by_kind(docs, "NetworkPolicy") and not by_kind(docs, "ServiceAccount")
    for workload in deployments(docs).values():
        assert workload["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def images(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {service: container["image"] for _, service, container in containers(docs)}


def test_images(chart: helm.Chart, default_docs: list[dict[str, Any]]) -> None:
    # The default is what .github/workflows/release.yml pushes for the chart's appVersion.
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert set(images(default_docs).values()) == {f"ghcr.io/eventpipe/eventpipe:{app_version}"}
    digest = "sha256:" + "a" * 64
    llm_digest = "sha256:" + "b" * 64
    docs = render(chart, {"image": {"repository": "r.example/ep", "digest": digest},
                          "llm": {"backend": "transformers", "model": "/models/m.gguf"}})
    found = images(docs)
    # transformers needs torch: the -llm image, by tag when no llm digest is given.
    assert found.pop("llm") == f"r.example/ep:{app_version}-llm"
    assert set(found.values()) == {f"r.example/ep@{digest}"}
    docs = render(chart, {"image": {"tag": "1.2.3", "llmDigest": llm_digest},
                          "llm": {"backend": "transformers", "model": "/models/m.gguf"}})
    found = images(docs)
    assert found.pop("llm") == f"ghcr.io/eventpipe/eventpipe@{llm_digest}"
    assert set(found.values()) == {"ghcr.io/eventpipe/eventpipe:1.2.3"}
    with pytest.raises(helm.HelmRenderError) as caught:
        render(chart, {"image": {"repository": ""}})
    assert "image.repository is empty" in str(caught.value)
    with pytest.raises(helm.HelmValuesError, match="/image/digest"):
        chart.validate_schema({"image": {"digest": "latest"}})


def test_read_write_once_pod_is_refused_with_the_reason(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="ReadWriteOncePod lets one pod"):
        render(chart, {"persistence": {"accessModes": ["ReadWriteOncePod"]}})
    # ReadWriteMany: no co-location, the data pods spread like the others.
    docs = render(chart, {"persistence": {"accessModes": ["ReadWriteMany"]}})
    for service, workload in deployments(docs).items():
        pod = workload["spec"]["template"]["spec"]
        assert "affinity" not in pod and pod["topologySpreadConstraints"], service


def test_elasticsearch_ca_from_a_secret(chart: helm.Chart) -> None:
    docs = render(chart, {"storage": {"elasticsearch": {
        "url": "https://es-http.search.svc:9200", "username": "eventpipe",
        "caSecret": {"name": "es-http-certs-public", "key": "ca.crt"}}}})
    validate_strictly(docs)
    config = by_kind(docs, "ConfigMap")[f"{FULLNAME}-config"]["data"]
    assert config["EVENTPIPE_ELASTICSEARCH_CA_CERTS"] == "/etc/eventpipe/elasticsearch-ca/ca.crt"
    for service in ("sink", "linker"):
        pod = deployments(docs)[service]["spec"]["template"]["spec"]
        [volume] = [v for v in pod["volumes"] if v["name"] == "elasticsearch-ca"]
        assert volume["secret"]["secretName"] == "es-http-certs-public"
        [mount] = [m for m in pod["containers"][0]["volumeMounts"]
                   if m["name"] == "elasticsearch-ca"]
        assert mount == {"name": "elasticsearch-ca", "mountPath": "/etc/eventpipe/elasticsearch-ca",
                         "readOnly": True}


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        # null deletes a default: a memory limit cannot be taken away.
        ({"services": {"dp": {"resources": {"limits": {"memory": None}}}}},
         "/services/dp/resources/limits"),
        ({"services": {"sink": {"resources": {"limits": None}}}}, "/services/sink/resources"),
        ({"kafka": {"partitionAssignmentStrategy": "sticky"}},
         "/kafka/partitionAssignmentStrategy"),
        ({"kafka": {"minInsyncReplicas": 0}}, "/kafka/minInsyncReplicas"),
    ],
)
def test_production_values_are_checked(chart: helm.Chart, values: dict[str, Any],
                                       complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(values)


STRIMZI = {"strimzi": {"cluster": "my-cluster", "topics": {"enabled": True},
                       "user": {"enabled": True}},
           "hooks": {"createTopics": False}}


def test_strimzi_topics_carry_the_library_topic_specs(chart: helm.Chart) -> None:
    from eventpipe.kafka.topics import topic_specs
    from eventpipe.settings import Settings

    docs = render(chart, STRIMZI)
    validate_strictly(docs)
    config = by_kind(docs, "ConfigMap")[f"{FULLNAME}-config"]["data"]
    settings = Settings.model_validate(
        {k.removeprefix("EVENTPIPE_").lower(): v for k, v in config.items()})
    topics = {t["spec"]["topicName"]: t for t in by_kind(docs, "KafkaTopic").values()}
    specs = topic_specs(settings)
    assert sorted(topics) == sorted(s.name for s in specs)
    for spec in specs:
        topic = topics[spec.name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        # Deleting a KafkaTopic deletes the topic: never on uninstall.
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"] == dict(spec.config), spec.name
    # The operator creates the topics: no setup Job.
    assert not by_kind(docs, "Job")


def test_strimzi_user_acls(chart: helm.Chart) -> None:
    [user] = by_kind(render(chart, STRIMZI), "KafkaUser").values()
    assert user["metadata"]["name"] == "eventpipe"
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    acls = {(a["resource"]["type"], a["resource"].get("name"), a["resource"].get("patternType")):
            set(a["operations"]) for a in user["spec"]["authorization"]["acls"]}
    assert acls[("topic", "eventpipe.", "prefix")] == {"Read", "Write", "Describe",
                                                        "DescribeConfigs"}
    assert acls[("group", "eventpipe-", "prefix")] == {"Read", "Describe"}
    assert acls[("cluster", None, None)] == {"IdempotentWrite"}
    # With the setup Job creating the topics, it may create and fix their configs too.
    [user] = by_kind(render(chart, {"strimzi": {"cluster": "c", "user": {"enabled": True}}}),
                     "KafkaUser").values()
    topic_ops = next(set(a["operations"]) for a in user["spec"]["authorization"]["acls"]
                     if a["resource"]["type"] == "topic")
    assert {"Create", "AlterConfigs"} <= topic_ops


def test_strimzi_conflicts_are_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="let one of them create the topics"):
        render(chart, {"strimzi": {"cluster": "c", "topics": {"enabled": True}}})
    with pytest.raises(helm.HelmRenderError, match=re.escape("strimzi.cluster is empty")):
        render(chart, {"strimzi": {"user": {"enabled": True}}})


def test_a_language_model_gets_a_longer_startup(chart: helm.Chart,
                                                default_docs: list[dict[str, Any]]) -> None:
    def startup(docs: list[dict[str, Any]], service: str) -> int:
        [container] = deployments(docs)[service]["spec"]["template"]["spec"]["containers"]
        probe = container["startupProbe"]
        return int(probe["periodSeconds"] * probe["failureThreshold"])

    assert startup(default_docs, "llm") == startup(default_docs, "ner") == 300
    docs = render(chart, {"llm": {"backend": "transformers", "model": "/models/m.gguf"}})
    assert startup(docs, "llm") == 900 and startup(docs, "dp") == 300
    docs = render(chart, {"llm": {"backend": "transformers", "model": "/models/m.gguf"},
                          "services": {"llm": {"startupProbe": {"periodSeconds": 10,
                                                                "failureThreshold": 180}}}})
    assert startup(docs, "llm") == 1800
