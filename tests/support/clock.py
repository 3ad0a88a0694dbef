"""A clock for retry tests: `wait` advances it instead of sleeping, and `time.monotonic`
reads it, so a backoff of minutes runs in no real time."""

from __future__ import annotations

import pytest


class FakeClock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        monkeypatch.setattr("time.monotonic", lambda: self.now)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
