"""Helpers shared by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from eventpipe.checkpoint.files import CheckpointNotFound, read_checkpoint
from eventpipe.kafka.errors import BrokerConfigError
from eventpipe.kafka.local_kafka import find_java, find_kafka_libs
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from support.corpus import generate_documents


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def corpus_lines(n: int, seed: int = 11) -> list[str]:
    return [json.dumps(d) for d in generate_documents(n, seed=seed)]


def wait_checkpoint(
    settings: Settings,
    job_id: str,
    until: Any,
    timeout_s: float = 180.0,
    stack: Stack | None = None,
) -> dict[str, Any]:
    """Poll the checkpoint file until `until(cp)` holds; restarts dead services if a stack is
    given (as `eventpipe run` does)."""
    deadline = time.monotonic() + timeout_s
    cp: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if stack is not None:
            stack.supervise()
        try:
            cp = read_checkpoint(settings.checkpoint_dir, job_id)
        except CheckpointNotFound:
            cp = None
        if cp is not None and until(cp):
            return cp
        time.sleep(0.1)
    raise AssertionError(f"checkpoint condition not met in {timeout_s} s; last: "
                         f"{ {k: v for k, v in (cp or {}).items() if not k.endswith('ids')} }")


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


EVENTPIPE = [sys.executable, "-m", "eventpipe.cli"]


def run_cli(*args: str, data_dir: Path, timeout: float = 240,
            env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env["EVENTPIPE_DATA_DIR"] = str(data_dir)
    env.update(env_extra or {})
    return subprocess.run([*EVENTPIPE, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


class TcpProxy:
    """Forwards a loopback port to a server; `cut()` closes the port and every connection
    through it (the server looks gone), `restore()` opens it again. Stands between the sink
    and a real PostgreSQL to take the database away mid-batch without stopping it."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self._socket, self._threading = socket, threading
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._listener: Any = None
        self._conns: list[Any] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = self._socket.socket()
        listener.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: Any) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                # A connection queued before a cut and accepted after it: the server is gone.
                cut = listener is not self._listener
                if not cut:
                    self._conns += [client, upstream]
            if cut:
                client.close()
                upstream.close()
                return
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(self._socket.SHUT_RDWR)
                c.close()


def read_checkpoint_or_none(settings: Settings, job_id: str) -> dict[str, Any] | None:
    try:
        return read_checkpoint(settings.checkpoint_dir, job_id)
    except CheckpointNotFound:
        return None


def kafka_libs_or_skip() -> Path:
    """The Apache Kafka jars of `make kafka`; without them a test skips, or fails under CI
    (where `.ci/run` has fetched them)."""
    try:
        find_java()
        return find_kafka_libs()
    except BrokerConfigError as exc:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"Apache Kafka is needed under CI: {exc}") from None
        pytest.skip(f"Apache Kafka tests: {exc}")
