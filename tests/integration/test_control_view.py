"""`eventpipe.control.view.ControlView` on the real broker: once `start_caught_up` returns,
every control record written before it has been read (the marker protocol), and records
written later are followed live."""

from __future__ import annotations

import time

import pytest

from eventpipe.control.messages import encode_control
from eventpipe.control.view import ControlView
from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.kafka.topics import Topics, ensure_topics
from eventpipe.models import ControlCommand, job_id_for
from eventpipe.settings import Settings

pytestmark = pytest.mark.integration


def send(settings: Settings, command: ControlCommand, job_id: str) -> None:
    producer = make_producer(settings)
    producer.produce(Topics.from_settings(settings).control, key=job_id.encode(),
                     value=encode_control(command, job_id))
    assert producer.flush(30) == 0


def test_caught_up_means_every_earlier_record_is_read(settings: Settings) -> None:
    ensure_topics(make_admin(settings), settings)
    paused, stopped, other = (job_id_for(b) for b in ("p", "s", "o"))
    # Many records before the view starts, the deciding ones last.
    for _ in range(50):
        send(settings, ControlCommand.RESUME, other)
    send(settings, ControlCommand.PAUSE, paused)
    send(settings, ControlCommand.STOP, stopped)
    view = ControlView(settings)
    try:
        view.start_caught_up(timeout_s=60)
        # No waiting here: returning is the promise.
        latest = view.latest
        assert latest.command(paused) is ControlCommand.PAUSE and view.blocks(paused)
        assert latest.command(stopped) is ControlCommand.STOP
        assert latest.command(other) is ControlCommand.RESUME
        # A document sent after the resume (stamped with its epoch) passes.
        assert not view.blocks(other, latest.epoch(other))
        # Followed live afterwards.
        send(settings, ControlCommand.RESUME, paused)
        deadline = time.monotonic() + 30
        while latest.command(paused) is not ControlCommand.RESUME:
            assert time.monotonic() < deadline, "the resume was never read"
            time.sleep(0.05)
        assert not view.blocks(paused, latest.epoch(paused))
        assert view.blocks(stopped, latest.epoch(paused))  # stop is final
    finally:
        view.close()
