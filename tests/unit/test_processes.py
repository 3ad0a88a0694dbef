"""The stack signals only its own processes: a pid is checked against the command line and
the start time recorded for it."""

from __future__ import annotations

import subprocess
import sys
import time

from eventpipe.processes import pid_alive, start_ticks
from eventpipe.stack import Owned, stop_processes


def test_a_process_that_is_not_the_recorded_one_is_never_signalled() -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while not pid_alive(other.pid, "sleep"):  # until it has exec'd
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = start_ticks(other.pid)
        assert started is not None and pid_alive(other.pid, "sleep", started)
        # Same pid, but another command line or start time: not ours, left alone.
        stop_processes([Owned(other.pid, "services.ner", started),
                        Owned(other.pid, "sleep", started + 1)], timeout_s=0.5)
        assert other.poll() is None
        stop_processes([Owned(other.pid, "sleep", started)], timeout_s=5)
        assert other.wait(5) is not None
    finally:
        other.kill()
        other.wait()
    assert not pid_alive(other.pid, "sleep", started)
    assert sys.executable  # the test ran on Linux /proc
