"""Measuring and killing processes, for the tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import time

from eventpipe.stack import Stack


def _status_mb(pid: int, field: str) -> float | None:
    """A memory line of /proc/<pid>/status (Linux), in MiB; None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb(pid: int) -> float:
    """A running process's peak resident memory (VmHWM), in MiB; NaN where unknown."""
    found = _status_mb(pid, "VmHWM")
    return float("nan") if found is None else found


def rss_mb(pid: int) -> float:
    """Resident memory now (VmRSS, not the peak), in MiB; 0 when the process is gone."""
    return _status_mb(pid, "VmRSS") or 0.0


def cpu_seconds(pid: int) -> float:
    """A running process's CPU time so far (user + system, all threads); NaN where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # Fields 14 and 15 of proc(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_service(stack: Stack, name: str, sig: int = signal.SIGKILL,
                 timeout_s: float = 30.0) -> None:
    """Send a signal to one of the stack's services; after SIGKILL or SIGTERM, wait until the
    stack sees it exited, so the next step starts from a dead service."""
    proc = stack.procs[name]
    os.kill(proc.pid, sig)
    if sig not in (signal.SIGKILL, signal.SIGTERM):
        return
    deadline = time.monotonic() + timeout_s
    while stack.exit_code(proc) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"service {name} (pid {proc.pid}) still runs after signal {sig}")
        time.sleep(0.05)
