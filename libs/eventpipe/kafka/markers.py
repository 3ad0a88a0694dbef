"""Reading a topic to "now". A reader writes a marker record (key `marker/<token>`) to every
partition it reads and is caught up once each has come back: everything written before the
markers has then been read. High watermarks are not trusted for this (some brokers report
them wrong). Every fold skips markers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from eventpipe.constants import MARKER_PREFIX
from eventpipe.errors import CatchUpTimeout


def marker_key(token: str) -> bytes:
    return MARKER_PREFIX + token.encode()


def is_marker(key: bytes | None) -> bool:
    return key is not None and key.startswith(MARKER_PREFIX)


class Markers:
    """How often each awaited marker has come back; a reader thread may report while another
    waits. Only markers this reader awaits are counted: others' markers cost no memory."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}
        self._changed = threading.Condition()

    def expect(self, key: bytes) -> None:
        """Await this marker: call before writing it, so none of its copies is missed."""
        with self._changed:
            self._seen[key] = 0

    def saw(self, key: bytes) -> None:
        with self._changed:
            if key in self._seen:
                self._seen[key] += 1
                self._changed.notify_all()

    def catch_up(self, key: bytes, expected: int, timeout_s: float, what: str,
                 read: Callable[[], object] | None = None) -> None:
        """Return once marker `key` has come back `expected` times. `read` reads on in this
        thread, for a reader without a thread of its own; without it another thread reads
        and reports through `saw`. Raises CatchUpTimeout after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._changed:
                if self._seen.get(key, 0) >= expected:
                    self._seen.pop(key, None)
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._seen.pop(key, None)
                    raise CatchUpTimeout(f"{what} not read to its end in {timeout_s:g} s")
                if read is None:
                    self._changed.wait(remaining)
                    continue
            read()
