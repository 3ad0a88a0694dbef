"""Retrying an unreachable backend with backoff (eventpipe.backoff's loop), loudly, without
losing anything, until it is back or the service is asked to stop. Beside the backends it
retries, so storage needs nothing from the stage runner above it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from eventpipe.backoff import Backoff, retry
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
    """Call until it does not raise BackendUnavailable, for as long as it takes. `wait` lets
    the caller keep its Kafka consumer alive (polling a paused assignment) between tries."""
    failures = 0

    def failed(exc: Exception, retry_no: int, delay: float) -> None:
        nonlocal failures
        failures = retry_no
        log.error(f"{what} unavailable; retrying in {delay:.1f} s",
                  extra={"backend": what, "reason": str(exc)[:500], "attempt": retry_no})

    def wait_unless_stopped(delay: float) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if stop.is_set():
                raise StopRequested(what)
            wait(min(0.2, max(0.0, deadline - time.monotonic())))

    result = retry(call, retry_on=(BackendUnavailable,), backoff=Backoff(0.5, max_delay_s),
                   wait=wait_unless_stopped, on_retry=failed)
    if failures:
        log.warning(f"{what} is back after {failures} failed attempts", extra={"backend": what})
    return result
