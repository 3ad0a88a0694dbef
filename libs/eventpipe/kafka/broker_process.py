"""What the embedded broker and the local Apache Kafka share: a child process that is waited
for until it serves, and stopped with SIGTERM (both shut down cleanly on it)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from eventpipe.errors import BrokerStartError


class BrokerProcess:
    name = "the broker"  # in error messages
    stop_timeout_s = 15.0  # how long a clean shutdown may take

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout_s: float = 60.0) -> None:
        raise NotImplementedError

    def _wait_ready(self, ready: Callable[[], bool], timeout_s: float, poll_s: float,
                    exited: Callable[[int], Exception], hint: str = "") -> None:
        """Until `ready()` holds. A process that exits first raises `exited(code)`; one
        not ready in time is stopped, and BrokerStartError raised."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise exited(code)
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(f"{self.name} did not start within {timeout_s} s{hint}")
            time.sleep(poll_s)

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM, then wait for the exit (SIGKILL past the timeout): a new broker on the
        same port or data fails until then."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s if timeout_s is not None else self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
