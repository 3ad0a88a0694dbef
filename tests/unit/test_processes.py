"""The stack signals only its own processes: a pid is checked against the command line and
the start time recorded for it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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


def test_down_leaves_alone_the_pids_a_forged_stack_file_lists(tmp_path: Path) -> None:
    from eventpipe.cli.stack_commands import down, state_path
    from eventpipe.settings import Settings
    from eventpipe.stack import ServiceProcess, StackState

    victims = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        settings = Settings(data_dir=tmp_path)
        StackState(bootstrap="127.0.0.1:9", broker_kind="embedded", broker_pid=victims[0].pid,
                   session_timeout_ms=2000, heartbeat_interval_ms=500,
                   services={"ner": ServiceProcess("ner", "ner", victims[1].pid, "x.log")},
                   ).save(state_path(settings))
        assert state_path(settings).stat().st_mode & 0o777 == 0o600
        assert down(settings, timeout_s=1) == 0
        assert all(v.poll() is None for v in victims)
    finally:
        for v in victims:
            v.kill()
            v.wait()
