"""A stage releases what it can once, after `idle_release_s` without documents, and again
only after documents arrived in between."""

from __future__ import annotations

from eventpipe.runtime.idle import IdleRelease, give_back_free_memory, rss_mb


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_release_runs_once_per_idle_period() -> None:
    clock, released = Clock(), []
    idle = IdleRelease(30.0, lambda: released.append(clock.now), clock=clock)
    clock.now += 29
    assert not idle.tick()
    clock.now += 2
    assert idle.tick()
    clock.now += 100
    assert not idle.tick()  # still idle: nothing more to give back
    assert released == [1031.0]
    idle.busy()  # documents: the model is loaded again by the stage itself
    clock.now += 10
    assert not idle.tick()
    clock.now += 25
    assert idle.tick()
    assert len(released) == 2


def test_zero_means_never() -> None:
    clock, released = Clock(), []
    idle = IdleRelease(0.0, lambda: released.append(1), clock=clock)
    clock.now += 10**6
    assert not idle.tick()
    assert released == []


def test_freed_heap_goes_back_to_the_system() -> None:
    block = bytearray(300 * 1024 * 1024)  # touched pages: resident
    held = rss_mb()
    del block
    give_back_free_memory()
    assert rss_mb() < held - 200
