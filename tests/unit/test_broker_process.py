"""The start-wait and stop both local brokers share (kafka/broker_process.py), on real child
processes standing in for a broker."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventpipe.errors import BrokerConfigError, BrokerStartError
from eventpipe.kafka.broker_process import BrokerProcess


class Child(BrokerProcess):
    name = "the test broker"

    def __init__(self, code: str, ready_after_s: float | None) -> None:
        super().__init__()
        self.code = code
        self.ready_after_s = ready_after_s

    def start(self, timeout_s: float = 5.0) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", self.code])
        started = time.monotonic()
        ready_after = self.ready_after_s

        def ready() -> bool:
            return ready_after is not None and time.monotonic() - started >= ready_after

        self._wait_ready(ready, timeout_s, 0.02,
                         lambda code: BrokerConfigError(f"exited with {code}"), "; see log")


def test_ready_then_stopped_by_sigterm() -> None:
    with Child("import time; time.sleep(60)", ready_after_s=0.2) as child:
        process = child.process
        assert process is not None and process.poll() is None
    assert child.process is None and process.returncode == -15


def test_an_exit_while_starting_is_the_brokers_own_error() -> None:
    child = Child("import sys; sys.exit(3)", ready_after_s=None)
    with pytest.raises(BrokerConfigError, match="exited with 3"):
        child.start()
    assert child.process is None


def test_not_ready_in_time_is_stopped() -> None:
    child = Child("import time; time.sleep(60)", ready_after_s=None)
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match=re.escape(
            "the test broker did not start within 0.3 s; see log")):
        child.start(timeout_s=0.3)
    assert child.process is None and time.monotonic() - started < 10


def test_a_broker_deaf_to_sigterm_is_killed_past_the_timeout(tmp_path: Path) -> None:
    deaf = tmp_path / "deaf"
    code = ("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(deaf)!r}).touch(); time.sleep(60)")
    child = Child(code, ready_after_s=0)
    child.start()
    process = child.process
    assert process is not None
    deadline = time.monotonic() + 30
    while not deaf.exists():  # its SIGTERM handler is in place
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.stop(timeout_s=0.3)
    assert process.returncode == -9 and child.process is None
