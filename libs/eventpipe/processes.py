"""Child-process helpers shared by the embedded broker and the embedded stack."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import time


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the process that started it dies, so
    a killed `eventpipe run` leaves no services behind (Linux only; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot, field 22 of proc(5)): with the pid,
    it names one process for good; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int, expect_in_cmdline: str | None = None,
              started: int | None = None) -> bool:
    """Whether the process runs (not a zombie), and, when given, whether its command line
    names what we started and it started when ours did, so a reused pid is never taken for
    ours (and never signalled as ours)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):
            return False
        if started is not None and int(fields[19]) != started:
            return False
        if expect_in_cmdline is not None:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return expect_in_cmdline.encode() in f.read()
        return True
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
