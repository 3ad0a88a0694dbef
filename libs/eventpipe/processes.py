"""Child-process helpers shared by the embedded broker and the embedded stack."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the process that started it dies, so
    a killed `eventpipe run` leaves no services behind (Linux only; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
