"""`eventpipe.backoff`: the one retry loop. Waits double up to the cap and honour a server's
minimum; tries stop at the attempt count or the deadline with the last error; errors not
named are raised at once. `wait` records time instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eventpipe.backoff import Backoff, retry
from support.clock import FakeClock


class Busy(Exception):
    def __init__(self, retry_after_s: float = 0.0) -> None:
        super().__init__("busy")
        self.retry_after_s = retry_after_s


def failing(times: int, exc: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "done"

    return calls, call


def test_waits_double_up_to_the_cap_and_the_call_succeeds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    calls, call = failing(5, Busy())
    told: list[tuple[int, float]] = []
    result = retry(call, retry_on=(Busy,), backoff=Backoff(0.5, 3.0), wait=clock.wait,
                   on_retry=lambda _e, n, d: told.append((n, d)))
    assert result == "done" and len(calls) == 6
    assert clock.waits == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert told == [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]


def test_attempts_spent_raise_the_last_error(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    calls, call = failing(10, Busy())
    with pytest.raises(Busy):
        retry(call, retry_on=(Busy,), backoff=Backoff(1.0, 8.0), attempts=3,
              wait=clock.wait)
    assert len(calls) == 3 and clock.waits == [1.0, 2.0]


def test_no_try_starts_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    calls, call = failing(10, Busy())
    with pytest.raises(Busy):
        retry(call, retry_on=(Busy,), backoff=Backoff(1.0, 8.0), deadline_s=5.0,
              wait=clock.wait)
    # Tries at 0, 1 and 3 s; the next would start at 7 s, past the 5 s deadline.
    assert len(calls) == 3 and clock.now == 3.0


def test_a_servers_minimum_wait_is_honoured_within_the_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    _, call = failing(2, Busy(retry_after_s=5.0))
    retry(call, retry_on=(Busy,), backoff=Backoff(0.5, 4.0), wait=clock.wait,
          at_least_s=lambda exc: exc.retry_after_s if isinstance(exc, Busy) else 0.0)
    assert clock.waits == [4.0, 4.0]


def test_other_errors_are_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    calls, call = failing(1, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        retry(call, retry_on=(Busy,), backoff=Backoff(0.5, 4.0), wait=clock.wait)
    assert len(calls) == 1 and clock.waits == []
