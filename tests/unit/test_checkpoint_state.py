from __future__ import annotations

import itertools
import json

from eventpipe.checkpoint.state import JobTable
from eventpipe.models import (
    ControlCommand,
    DocRecord,
    JobRecord,
    JobStatus,
    Stage,
    StatusRecord,
    job_id_for,
)

JOB = job_id_for("b1")


def records() -> list[DocRecord | JobRecord]:
    return [
        JobRecord(job_id=JOB, batch_id="b1", created_at="2025-01-01T00:00:00Z",
                  total_documents=3),
        DocRecord(job_id=JOB, doc_id="a", state="processed", at="2025-01-01T00:00:01Z"),
        DocRecord(job_id=JOB, doc_id="b", state="failed", stage=Stage.NER, error="boom",
                  at="2025-01-01T00:00:02Z"),
        DocRecord(job_id=JOB, doc_id="c", state="processed", at="2025-01-01T00:00:03Z"),
    ]


def test_any_order_and_duplicates_give_the_same_counts() -> None:
    expected = None
    for order in itertools.permutations(records()):
        table = JobTable()
        for r in [*order, *order]:  # every record delivered twice
            table.apply_record(r)
        cp = table.to_checkpoint(table.jobs[JOB]).to_file()
        summary = (cp["processed_documents"], cp["failed_documents"], cp["total_documents"],
                   sorted(cp["processed_doc_ids"]), cp["failures"], cp["updated_at"])
        expected = expected or summary
        assert summary == expected
    assert expected == (2, 1, 3, ["a", "c"], {"b": {"stage": "ner", "error": "boom"}},
                        "2025-01-01T00:00:03Z")


def test_processed_wins_over_a_later_failure_and_clears_an_earlier_one() -> None:
    table = JobTable()
    table.apply_record(DocRecord(job_id=JOB, doc_id="a", state="failed", stage=Stage.DP,
                                 error="x", at="t1"))
    table.apply_record(DocRecord(job_id=JOB, doc_id="a", state="processed", at="t2"))
    table.apply_record(DocRecord(job_id=JOB, doc_id="a", state="failed", stage=Stage.DP,
                                 error="y", at="t3"))
    state = table.jobs[JOB]
    assert list(state.processed) == ["a"] and not state.failures


def test_status_follows_control_and_terminal_records() -> None:
    table = JobTable()
    for r in records()[:2]:
        table.apply_record(r)
    state = table.jobs[JOB]
    assert table.status(state) is JobStatus.RUNNING and not state.all_done
    msg = json.dumps({"command": "pause", "job_id": JOB}).encode()
    table.apply_control(JOB.encode(), msg, 1000)
    assert table.status(state) is JobStatus.PAUSED
    # a batch id may stand in for the job id; newest timestamp wins
    table.apply_control(b"b1", json.dumps({"command": "resume", "batch_id": "b1"}).encode(), 2000)
    assert table.status(state) is JobStatus.RUNNING
    table.apply_control(JOB.encode(), json.dumps({"command": "stop", "job_id": JOB}).encode(), 1500)
    assert table.status(state) is JobStatus.RUNNING, "an older command must not win"
    table.apply_record(StatusRecord(job_id=JOB, status=JobStatus.COMPLETED, at="t9"))
    assert table.status(state) is JobStatus.COMPLETED


def test_malformed_control_and_checkpoint_records_are_ignored() -> None:
    table = JobTable()
    for value in [b"{not json", b"[]", b'{"command": "explode", "job_id": "x"}', b""]:
        table.apply_control(b"k", value, 1)
    table.apply_checkpoint(b"doc/x/y", b'{"type": "doc"}')
    table.apply_checkpoint(b"doc/x/y", b"\xff\xfe")
    assert table.jobs == {}


def test_tombstones_remove_a_job() -> None:
    table = JobTable()
    for r in records():
        table.apply_record(r)
    table.apply_checkpoint(f"doc/{JOB}/a".encode(), None)
    assert "a" not in table.jobs[JOB].processed
    table.apply_checkpoint(f"job/{JOB}".encode(), None)
    assert JOB not in table.jobs


def test_control_commands_are_validated() -> None:
    from eventpipe.control.messages import InvalidControlMessage, parse_control

    pause = json.dumps({"command": "pause", "job_id": JOB}).encode()
    assert parse_control(pause).command is ControlCommand.PAUSE
    for bad, words in [(b"nope", "not valid JSON"), (b"[1]", "JSON object"),
                       (b'{"command": "halt", "job_id": "j"}', "unknown command"),
                       (b'{"command": "stop"}', "job_id"), (None, "empty"),
                       (b'{"command": "stop", "job_id": "j"}', "not a job id")]:
        try:
            parse_control(bad)
        except InvalidControlMessage as exc:
            assert words in str(exc), (bad, exc)
        else:
            raise AssertionError(f"accepted {bad!r}")


def test_a_running_job_without_progress_is_reported_stuck_with_what_it_waits_for() -> None:
    import calendar
    import time

    table = JobTable()
    table.apply_record(JobRecord(job_id=JOB, batch_id="b1", created_at="2025-01-01T00:00:00Z"))
    t0 = calendar.timegm(time.strptime("2025-01-01T00:00:00Z", "%Y-%m-%dT%H:%M:%SZ"))
    state = table.jobs[JOB]
    assert table.stuck(state, t0 + 59, after_s=60) is None
    assert table.stuck(state, t0 + 60, after_s=60) == {
        "since": "2025-01-01T00:00:00Z", "waiting_for":
        "the closing message of its stream (0 documents recorded, total unknown)"}
    table.apply_record(JobRecord(job_id=JOB, batch_id="b1", created_at="2025-01-01T00:00:00Z",
                                 total_documents=3))
    table.apply_record(DocRecord(job_id=JOB, doc_id="a", state="processed",
                                 at="2025-01-01T00:01:00Z"))
    assert table.stuck(state, t0 + 100, after_s=60) is None  # it moved at 00:01
    report = table.stuck(state, t0 + 120, after_s=60)
    assert report is not None and report["waiting_for"] == "2 of 3 documents"
    table.apply_control(JOB.encode(), json.dumps({"command": "pause", "job_id": JOB}).encode(),
                        (t0 + 130) * 1000)
    assert table.stuck(state, t0 + 10_000, after_s=60) is None  # paused on purpose
