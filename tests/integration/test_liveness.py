"""/healthz follows the consume loop's heartbeat: 503 before the loop starts (a model still
loading), 200 while it steps, 503 once a handler hangs past the limit, 200 again after."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Message

from eventpipe.kafka.clients import make_admin
from eventpipe.kafka.topics import Topics, ensure_topics
from eventpipe.runtime.health import HEARTBEAT, start_health_server
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.settings import Settings


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def health_port() -> Iterator[int]:
    saved = (HEARTBEAT.stale_s, HEARTBEAT._last)
    HEARTBEAT._last = None  # a fresh process: no beat yet
    server = start_health_server(0, host="127.0.0.1", stale_s=1.0)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    HEARTBEAT.stale_s, HEARTBEAT._last = saved


def test_a_hung_consume_loop_fails_liveness(settings: Settings, health_port: int) -> None:
    ensure_topics(make_admin(settings), settings)
    topic = Topics.from_settings(settings).docs
    entered, release = threading.Event(), threading.Event()

    def handle(msgs: list[Message]) -> None:
        entered.set()
        release.wait(60)  # a call that does not come back

    loop = ConsumeLoop(settings, service="test", topics=[topic], group_id=f"{topic}-g",
                       handle=handle)
    # Before the loop runs (the model is still loading): not started yet.
    code, body = healthz(health_port)
    assert code == 503 and "has not begun" in body
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        wait_for("the loop to beat", lambda: healthz(health_port)[0] == 200)
        loop.produce(topic, b"k", b"v")
        loop.flush()
        assert entered.wait(30), "the handler never got the record"
        wait_for("the heartbeat to go stale", lambda: healthz(health_port)[0] == 503)
        code, body = healthz(health_port)
        assert "has not stepped for" in body and "limit 1 s" in body
        release.set()
        wait_for("the loop to beat again", lambda: healthz(health_port)[0] == 200)
    finally:
        release.set()
        loop.stop_event.set()
        runner.join(30)
    assert not runner.is_alive()
