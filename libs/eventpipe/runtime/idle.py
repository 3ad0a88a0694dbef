"""Giving resources back while a stage has nothing to do.

When no document has arrived for `idle_release_s` (every job paused, stopped or finished),
`IdleRelease` calls the stage's own release (the events stage unloads its language model;
the next document loads it again) and asks the C allocator to return freed heap pages to
the system: memory a spaCy memory zone or a released model freed otherwise stays counted in
the process's RSS until reused. A stage keeps nothing across documents that it cannot
rebuild, so releasing changes no result, only the first document's latency after it."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def rss_mb() -> float:
    """This process's resident set size now, in MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def give_back_free_memory() -> bool:
    """`malloc_trim(0)`: glibc returns the free pages of its heaps to the system. False where
    there is no glibc (the call is then a no-op)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


class IdleRelease:
    """Call `tick()` often and `busy()` whenever documents arrive; after `after_s` without
    documents the release runs once, until documents arrive again. `after_s` 0: never."""

    def __init__(self, after_s: float, release: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self.release = release
        self.clock = clock
        self.last_busy = clock()
        self.released = False

    def busy(self) -> None:
        self.last_busy = self.clock()
        self.released = False

    def tick(self) -> bool:
        """Release if idle long enough and not yet released; True when it did."""
        if self.released or self.after_s <= 0 or self.clock() - self.last_busy < self.after_s:
            return False
        self.released = True
        before = rss_mb()
        if self.release is not None:
            self.release()
        give_back_free_memory()
        log.info("idle: resources released",
                 extra={"rss_mb_before": round(before, 1), "rss_mb_after": round(rss_mb(), 1),
                        "idle_s": round(self.clock() - self.last_busy, 1)})
        return True
