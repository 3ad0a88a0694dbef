"""Reading to the marker (`eventpipe.kafka.markers`), the one helper the checkpoint reader
and the control view share: with a reader thread that reports, with a read step in the
waiting thread, and the timeout."""

from __future__ import annotations

import threading
import time

import pytest

from eventpipe.errors import CatchUpTimeout, KafkaSetupError
from eventpipe.kafka.markers import Markers, is_marker, marker_key


def test_marker_keys() -> None:
    key = marker_key("abc")
    assert key == b"marker/abc"
    assert is_marker(key)
    assert not is_marker(b"job/abc") and not is_marker(None)


def test_catch_up_with_a_read_step_in_this_thread() -> None:
    markers = Markers()
    key = marker_key("t")
    markers.expect(key)
    reads = []

    def read() -> None:  # each read brings one marker back, the third completes it
        reads.append(1)
        markers.saw(key)

    markers.catch_up(key, 3, timeout_s=5, what="topic", read=read)
    assert len(reads) == 3


def test_catch_up_waits_for_a_reader_thread() -> None:
    markers = Markers()
    key = marker_key("t")
    other = marker_key("other")
    markers.expect(key)

    def reader() -> None:
        for k in (other, key, key):
            time.sleep(0.05)
            markers.saw(k)

    thread = threading.Thread(target=reader)
    started = time.monotonic()
    thread.start()
    markers.catch_up(key, 2, timeout_s=10, what="topic")
    # It returned only after both of its markers came back, not on the other one.
    assert time.monotonic() - started >= 0.1
    thread.join()


def test_only_awaited_markers_are_counted() -> None:
    markers = Markers()
    for n in range(1000):  # others' markers on a shared topic
        markers.saw(marker_key(str(n)))
    assert markers._seen == {}


def test_catch_up_times_out_with_both_old_meanings() -> None:
    markers = Markers()
    markers.expect(marker_key("t"))
    markers.saw(marker_key("t"))
    with pytest.raises(CatchUpTimeout, match="the control topic not read to its end") as err:
        markers.catch_up(marker_key("t"), 2, timeout_s=0.2, what="the control topic")
    # Callers that caught TimeoutError (checkpoint reader) or KafkaSetupError (control view)
    # still catch it.
    assert isinstance(err.value, TimeoutError) and isinstance(err.value, KafkaSetupError)
