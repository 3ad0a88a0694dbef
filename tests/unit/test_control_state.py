from __future__ import annotations

import json

import pytest

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.cli.output import monitor_line
from eventpipe.cli.stack_commands import parse_age
from eventpipe.control.state import ControlLatest
from eventpipe.errors import UsageError
from eventpipe.jobs import RateWindow
from eventpipe.models import ControlCommand, job_id_for

J = job_id_for("j")


def cmd(command: str, job: str = J) -> bytes:
    return json.dumps({"command": command, "job_id": job}).encode()


def test_documents_sent_before_a_pause_or_resume_are_dropped_after_it() -> None:
    c = ControlLatest()
    assert not c.blocks(J, 0) and c.epoch(J) == 0
    c.apply(J.encode(), cmd("pause"), 1000)
    assert c.blocks(J, 0)
    c.apply(J.encode(), cmd("resume"), 2000)
    assert c.command(J) is ControlCommand.RESUME and c.epoch(J) == 2000
    assert c.blocks(J, 0), "a document queued before the pause must not run after it"
    assert not c.blocks(J, 2000), "a re-sent document carries the resume's epoch"


def test_a_resend_passes_a_stage_that_has_not_read_the_resume_yet() -> None:
    c = ControlLatest()
    c.apply(J.encode(), cmd("pause"), 1000)
    assert not c.blocks(J, 2000)


def test_stop_is_final_and_out_of_order_commands_resolve_by_time() -> None:
    c = ControlLatest()
    c.apply(J.encode(), cmd("resume"), 3000)
    c.apply(J.encode(), cmd("pause"), 2000)  # older, arrives later
    assert c.command(J) is ControlCommand.RESUME
    c.apply(J.encode(), cmd("stop"), 4000)
    c.apply(J.encode(), cmd("resume"), 5000)
    assert c.command(J) is ControlCommand.STOP and c.blocks(J, 5000)


def test_markers_and_tombstones() -> None:
    c = ControlLatest()
    assert c.apply(b"marker/abc", b"{}", 1) is None and c.jobs == {}
    c.apply(J.encode(), cmd("pause"), 1)
    c.apply(J.encode(), None, 2)
    assert c.command(J) is None
    # A stop is final: a null record (anyone may write one) does not undo it.
    c.apply(J.encode(), cmd("stop"), 3)
    c.apply(J.encode(), None, 4)
    assert c.command(J) is ControlCommand.STOP and c.blocks(J, 5)


def test_control_job_ids_are_bounded_and_real() -> None:
    c = ControlLatest()
    for bad in ["x" * 900_000, J + "\n", J.upper(), "j", "bad\ud800id"]:
        c.apply(b"k", json.dumps({"command": "pause", "job_id": bad}).encode(), 1)
    assert c.jobs == {}


def test_monitor_line_and_rate() -> None:
    rate = RateWindow(window_s=60)
    rate.add(100, now=0.0)
    assert rate.add(130, now=30.0) == 60.0
    at = "2025-12-14T20:43:00Z"
    cp = Checkpoint.model_validate({
        "job_id": "f90aa645-4061-4e91-8199-43504ee4b770", "batch_id": "b", "status": "RUNNING",
        "total_documents": 253, "processed_documents": 136, "failed_documents": 12,
        "processed_doc_ids": [], "failed_doc_ids": [], "created_at": at, "updated_at": at,
        "metadata": {"started_at": at}})
    line = monitor_line(1, cp, 2.5)
    assert line.startswith("[1] ") and line.endswith(
        "| Status: PROGRESS | Progress: 136/253 (53.8%) | Failed: 12 | Rate: 2.5 docs/min")


def test_cleanup_ages() -> None:
    assert parse_age("7d").days == 7 and parse_age("90m").total_seconds() == 5400
    for bad in ["7", "d", "-1d", "7y", ""]:
        # The user's mistake, said as one: not any error that happens to mention an age.
        with pytest.raises(UsageError, match="age"):
            parse_age(bad)
