"""The console's part of the Helm chart (templates/console.yaml, templates/monitoring.yaml):
rendered with the Helm v4 library, validated strictly against the Kubernetes schemas, and the
dashboard and alert rules checked against the metrics the code really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import eventpipe.runtime.metrics  # noqa: F401 - registers the services' metrics
from eventpipe.settings import Settings
from services.console.metrics import JobGauges
from services.console.views import JobViews

CHART = Path(__file__).resolve().parents[2] / "helm" / "eventpipe"
FULLNAME = "demo-eventpipe"
MONITORING = {"monitoring": {"grafanaDashboard": {"enabled": True},
                             "prometheusRule": {"enabled": True,
                                                "labels": {"release": "kube-prometheus-stack"}}}}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> dict[tuple[str, str], Any]:
    rendered = chart.render(values, name="demo", namespace="pipelines", is_install=True)
    docs = [doc for path, text in rendered.items() if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]
    for doc in docs:
        if doc["kind"] != "PrometheusRule":  # a CRD: checked field by field below
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def exported_metrics(tmp_path: Path) -> set[str]:
    """Every metric family name the services and the console export."""
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("eventpipe_")}
    gauges = JobGauges(JobViews(Settings(data_dir=tmp_path)))
    return names | {m.name for m in gauges.collect()}


def referenced_metrics(expr: str) -> set[str]:
    return {re.sub(r"_(total|bucket|sum|count)$", "", name)
            for name in re.findall(r"\beventpipe_[a-z_]+", expr)}


def test_the_console_deployment_and_service(chart: helm.Chart) -> None:
    docs = render(chart)
    deployment = docs[("Deployment", f"{FULLNAME}-console")]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["args"] == ["console"]
    assert container["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["EVENTPIPE_CONSOLE_HOST"] == "0.0.0.0" and env["EVENTPIPE_CONSOLE_PORT"] == "8000"
    assert "EVENTPIPE_API_TOKEN" not in env  # written into the data volume instead
    assert not {"EVENTPIPE_POSTGRES_DSN", "EVENTPIPE_ELASTICSEARCH_PASSWORD"} & set(env)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "console"}
    [data] = [v for v in pod["spec"]["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-data"
    assert pod["metadata"]["labels"]["eventpipe/data-volume"] == "true"
    assert pod["spec"]["automountServiceAccountToken"] is False
    service = docs[("Service", f"{FULLNAME}-console")]
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "console": (80, "console")}
    policy = docs[("NetworkPolicy", f"{FULLNAME}-console")]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]


def test_tokens_from_a_secret_and_the_console_off(chart: helm.Chart) -> None:
    docs = render(chart, {"console": {"tokenSecret": "console-tokens",
                                      "corsOrigins": "https://ops.example"}})
    [container] = docs[("Deployment", f"{FULLNAME}-console")]["spec"]["template"]["spec"][
        "containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["EVENTPIPE_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "console-tokens", "key": "EVENTPIPE_API_TOKEN"}
    assert env["EVENTPIPE_API_READ_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["EVENTPIPE_CONSOLE_CORS_ORIGINS"]["value"] == "https://ops.example"
    off = render(chart, {"console": {"enabled": False}})
    assert not [key for key in off if key[1].endswith("-console")]
    with pytest.raises(helm.HelmValuesError):
        render(chart, {"console": {"port": 8080}})  # the health port


def test_dashboard_and_alerts_use_metrics_that_exist(chart: helm.Chart, tmp_path: Path) -> None:
    docs = render(chart, MONITORING)
    exported = exported_metrics(tmp_path)
    assert {"eventpipe_job_documents", "eventpipe_consumer_lag"} <= exported

    dashboard_map = docs[("ConfigMap", f"{FULLNAME}-dashboard")]
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_map["data"]["eventpipe.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        assert referenced_metrics(expr) and referenced_metrics(expr) <= exported, expr

    rule = docs[("PrometheusRule", FULLNAME)]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {"EventpipeJobStalled", "EventpipeConsumerLagGrowing",
                           "EventpipeFailureRateHigh", "EventpipeBackendUnreachable"}
    for name, r in alerts.items():
        assert set(r) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"[0-9]+[smh]", r["for"]), name
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        assert referenced_metrics(r["expr"]) <= exported, name
        assert r["expr"].count("(") == r["expr"].count(")"), name
    # Prometheus' template, left for Prometheus to fill in.
    assert "{{ $labels.batch_id }}" in alerts["EventpipeJobStalled"]["annotations"]["summary"]
    assert "> 900" in alerts["EventpipeJobStalled"]["expr"]
    assert "> 0.1" in alerts["EventpipeFailureRateHigh"]["expr"]
