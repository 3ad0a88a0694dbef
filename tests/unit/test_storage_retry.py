"""`eventpipe.storage.retry`: an unreachable backend is retried with a doubling delay up to
the cap, shutdown interrupts the waiting, and any other error is not retried. The `wait`
parameter is how the sink keeps its consumer alive between tries; here it records time
instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from eventpipe.errors import BackendUnavailable, StopRequested, StorageError
from eventpipe.storage.retry import retry_unavailable
from support.clock import FakeClock


def flaky(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise BackendUnavailable("connection refused")
        return "saved"

    return calls, call


def test_retries_with_a_doubling_delay_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    calls, call = flaky(5)
    result = retry_unavailable("pg", call, threading.Event(), max_delay_s=2.0, wait=clock.wait)
    assert result == "saved" and len(calls) == 6
    # 0.5, 1, 2, 2, 2 seconds between the six tries (waited in steps of at most 0.2 s).
    assert clock.now == pytest.approx(0.5 + 1 + 2 + 2 + 2)
    assert max(clock.waits) <= 0.2


def test_shutdown_interrupts_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    stop = threading.Event()
    calls, call = flaky(100)

    def wait(seconds: float) -> None:
        clock.wait(seconds)
        if clock.now >= 1.0:
            stop.set()

    with pytest.raises(StopRequested, match="pg"):
        retry_unavailable("pg", call, stop, max_delay_s=60.0, wait=wait)
    assert len(calls) == 2 and clock.now < 2.0


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)

    def refuses() -> None:
        raise StorageError("value too long")

    with pytest.raises(StorageError, match="too long"):
        retry_unavailable("pg", refuses, threading.Event(), max_delay_s=1.0, wait=clock.wait)
    assert clock.waits == []
