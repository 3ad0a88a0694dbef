"""Pytest plugin: an Elasticsearch for the storage tests.

By default noida-db's Elasticsearch service (a single binary from the `noida-db` dev
dependency that speaks the Elasticsearch REST API) runs in the foreground on a free loopback
port with a temporary data directory, one per test session; it answers within a fraction of a
second and stops on SIGTERM (saving its data) in about 1.5 s. Set
EVENTPIPE_TEST_ELASTICSEARCH_URL to run the same tests against a real Elasticsearch instead.

Register with `pytest_plugins = ["fixtures_es"]` in tests/conftest.py, or `-p fixtures_es`."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest

from eventpipe.storage.elasticsearch import ElasticsearchBackend
from support.needs import service_missing

ES_URL_ENV = "EVENTPIPE_TEST_ELASTICSEARCH_URL"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class NoidaStartFailed(Exception):
    """The binary is missing or exited before answering."""


def noida_binary() -> Path | None:
    """The binary inside the noida-db wheel. Not its `noida-db` console script: that wrapper
    runs the binary as a child, so stopping the wrapper would leave the server running."""
    try:
        path = Path(str(resources.files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers(host: str, port: int, timeout_s: float = 0.5) -> dict[str, object] | None:
    """GET / on the server; its JSON when it answers with 200. http.client, not urllib: no
    proxy from the environment may get in the way of a loopback address."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return None
        info = json.loads(body)
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


class NoidaElasticsearch:
    """One noida-db process serving only Elasticsearch, in the foreground (its own process
    group, so nothing it starts outlives it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.startup_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> str:
        binary = noida_binary()
        if binary is None:
            raise NoidaStartFailed("the noida-db binary is not installed "
                                   "(pip install -e '.[dev]' installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # the free port may be taken between probing and binding
            self.port = free_port()
            self._log = self.log_path.open("ab")
            began = time.monotonic()
            try:
                self.proc = subprocess.Popen(
                    [str(binary), "start", "--only", "elasticsearch",
                     "--host", "127.0.0.1", "--elasticsearch-port", str(self.port),
                     "--data-dir", str(self.data_dir)],
                    stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                self._close_log()
                raise NoidaStartFailed(f"cannot run {binary}: {exc}") from exc
            while time.monotonic() - began < timeout_s:
                if answers("127.0.0.1", self.port) is not None:
                    self.startup_s = time.monotonic() - began
                    return self.url
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            else:
                self.stop()
                raise TimeoutError(f"noida-db Elasticsearch did not answer on {self.url} "
                                   f"within {timeout_s:.0f} s; log: {self.log_tail()}")
            self.stop()
            if "in use" not in self.log_tail():
                raise NoidaStartFailed(f"noida-db exited at start; log: {self.log_tail()}")
        raise NoidaStartFailed(f"no free port for noida-db; log: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (it saves its data and exits), SIGKILL if it does not within 10 s."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT_S)
        self._close_log()

    def kill(self) -> None:
        """Gone at once, as a crashed server: nothing listens on its port afterwards."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            self._signal(proc, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)
        self._close_log()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # its own group: start_new_session

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def start_noida_or_skip(data_dir: Path) -> NoidaElasticsearch:
    server = NoidaElasticsearch(data_dir)
    try:
        server.start()
    except NoidaStartFailed as exc:
        service_missing(f"Elasticsearch tests need noida-db's Elasticsearch service: {exc}")
    return server


@pytest.fixture(scope="session")
def es_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an Elasticsearch for this session: $EVENTPIPE_TEST_ELASTICSEARCH_URL, or a
    noida-db started here and stopped at the end."""
    external = os.environ.get(ES_URL_ENV)
    if external:
        yield external
        return
    server = start_noida_or_skip(tmp_path_factory.mktemp("noida-es") / "data")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def es_is_emulator(es_url: str) -> bool:
    """True when es_url is noida-db, whose known gaps some tests step around."""
    if not os.environ.get(ES_URL_ENV):
        return True
    parts = urlsplit(es_url)
    info = answers(parts.hostname or "127.0.0.1", parts.port or 9200, timeout_s=5.0)
    version = info.get("version") if info else None
    return isinstance(version, dict) and version.get("build_hash") == "noida"


@pytest.fixture
def es_server(tmp_path: Path) -> Iterator[NoidaElasticsearch]:
    """A noida-db of this test's own, to stop or kill (outage tests)."""
    server = start_noida_or_skip(tmp_path / "noida-es")
    try:
        yield server
    finally:
        server.stop()


def drop_prefix(backend: ElasticsearchBackend) -> None:
    """Delete the indices and templates under the backend's prefix, by name (a real cluster
    refuses wildcard deletes by default)."""
    client = backend.client.options(ignore_status=404)
    pattern = f"{backend.index_prefix}-*"
    indices = list(client.indices.get(index=pattern).body)
    if indices:
        client.indices.delete(index=indices)
    templates = client.indices.get_index_template(name=pattern).body.get("index_templates", [])
    names = [t["name"] for t in templates]
    if names:
        client.indices.delete_index_template(name=",".join(names))


@pytest.fixture
def make_es_backend(es_url: str) -> Iterator[Callable[[], ElasticsearchBackend]]:
    """Backends on es_url with a prefix of this test's own; dropped and closed afterwards."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    made: list[ElasticsearchBackend] = []

    def make() -> ElasticsearchBackend:
        made.append(ElasticsearchBackend(es_url, index_prefix=prefix))
        return made[-1]

    yield make
    if made:
        drop_prefix(made[0])
    for backend in made:
        backend.close()


@pytest.fixture
def es_backend(make_es_backend: Callable[[], ElasticsearchBackend]) -> ElasticsearchBackend:
    """An ElasticsearchBackend with a unique index prefix for this test."""
    return make_es_backend()
