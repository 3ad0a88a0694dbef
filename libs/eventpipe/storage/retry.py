"""Retrying an unreachable backend with backoff, loudly, without losing anything. Beside the
backends it retries, so storage needs nothing from the stage runner above it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from eventpipe.errors import BackendUnavailable, StopRequested

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_unavailable(
    what: str,
    call: Callable[[], T],
    stop: threading.Event,
    max_delay_s: float,
    wait: Callable[[float], None] = time.sleep,
) -> T:
    """Call until it does not raise BackendUnavailable. `wait` lets the caller keep its Kafka
    consumer alive (polling a paused assignment) between tries."""
    delay = 0.5
    failures = 0
    while True:
        try:
            result = call()
        except BackendUnavailable as exc:
            failures += 1
            log.error(f"{what} unavailable; retrying in {delay:.1f} s",
                      extra={"backend": what, "reason": str(exc)[:500], "attempt": failures})
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if stop.is_set():
                    raise StopRequested(what) from exc
                wait(min(0.2, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, max_delay_s)
            continue
        if failures:
            log.warning(f"{what} is back after {failures} failed attempts",
                        extra={"backend": what})
        return result
