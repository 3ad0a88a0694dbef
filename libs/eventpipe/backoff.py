"""Trying again with exponential backoff: the one loop behind the retries of the sink's
backends (storage.retry), the model server (the openai backend) and a database that is still
starting (`eventpipe db migrate --wait`). Each caller says what is worth another try, how
many tries or how long, and how to wait; the waits double from `first_s` up to `max_s`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    first_s: float
    max_s: float

    def delay(self, retry: int, at_least_s: float = 0.0) -> float:
        """The wait before retry number `retry` (1: the first), at least `at_least_s` (a
        server's Retry-After), never more than `max_s`."""
        return min(max(self.first_s * 2.0 ** (retry - 1), at_least_s), self.max_s)


def retry(
    call: Callable[[], T],
    *,
    retry_on: tuple[type[Exception], ...],
    backoff: Backoff,
    attempts: int | None = None,
    deadline_s: float | None = None,
    wait: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Exception, int, float], None] | None = None,
    at_least_s: Callable[[Exception], float] | None = None,
) -> T:
    """`call()` until it returns. An exception in `retry_on` is tried again after the
    backoff's delay, unless `attempts` tries are spent or the next one would start more than
    `deadline_s` after the first: then it is raised. Other exceptions are raised at once.
    `on_retry(exc, retry, delay)` is told before each wait."""
    start = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            return call()
        except retry_on as exc:
            delay = backoff.delay(tries, at_least_s(exc) if at_least_s else 0.0)
            if attempts is not None and tries >= attempts:
                raise
            if deadline_s is not None and time.monotonic() + delay > start + deadline_s:
                raise
            if on_retry is not None:
                on_retry(exc, tries, delay)
            wait(delay)
