"""Pause, resume, stop, resubmission and Kafka submissions, on real services and a real broker:
through the CLI, and as raw JSON from another Kafka client (kafka-python)."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from eventpipe.cli.errors import UsageError
from eventpipe.constants import TIME_FORMAT
from eventpipe.jobs import send_control, submit
from eventpipe.models import ControlCommand, job_id_for
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import (
    corpus_lines,
    read_checkpoint_or_none,
    read_results,
    run_cli,
    wait_checkpoint,
    write_jsonl,
)

# On the embedded broker and on Apache Kafka (tests/conftest.py).
pytestmark = pytest.mark.both_brokers


def processed(settings: Settings, batch_id: str) -> int:
    path = settings.checkpoint_dir / f"{job_id_for(batch_id)}.json"
    return int(json.loads(path.read_text())["processed_documents"])


def assert_paused_and_still(settings: Settings, batch_id: str, quiet_s: float = 4.0) -> int:
    """After in-flight documents drain, the processed count does not move."""
    wait_checkpoint(settings, job_id_for(batch_id), lambda c: c["status"] == "PAUSED")
    # Drained: documents already past every stage are still saved; wait until the count has
    # held for a second (with a deadline), then watch it for `quiet_s`, sample by sample.
    before, held_since = processed(settings, batch_id), time.monotonic()
    deadline = held_since + 60.0
    while time.monotonic() - held_since < 1.0:
        assert time.monotonic() < deadline, "the count of a paused job never settled"
        time.sleep(0.1)
        if (now := processed(settings, batch_id)) != before:
            before, held_since = now, time.monotonic()
    watch_until = time.monotonic() + quiet_s
    while time.monotonic() < watch_until:
        assert processed(settings, batch_id) == before, "documents were processed while paused"
        time.sleep(0.1)
    return before


def checkpoint_epoch(cp: dict[str, Any]) -> float:
    return datetime.strptime(cp["updated_at"], TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def assert_exactly_once(settings: Settings, batch_id: str, n: int) -> dict[str, Any]:
    cp = wait_checkpoint(settings, job_id_for(batch_id),
                         lambda c: c["status"] in ("COMPLETED", "FAILED", "STOPPED"))
    assert cp["status"] == "COMPLETED"
    assert cp["processed_documents"] == n and cp["failed_documents"] == 0
    results = read_results(results_path(settings.data_dir, batch_id))
    counts = Counter(r["id"] for r in results)
    assert len(counts) == n and max(counts.values()) == 1
    return cp


class ForeignClient:
    """Another team's producer: kafka-python, a pure-Python client, writing plain JSON."""

    def __init__(self, settings: Settings) -> None:
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)

    def send(self, topic: str, key: str, value: dict[str, Any] | bytes) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.producer.send(topic, key=key.encode(), value=raw)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def kafka_python(settings: Settings) -> ForeignClient:
    return ForeignClient(settings)


def test_pause_down_up_resume_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = write_jsonl(tmp_path / "batch.jsonl", corpus_lines(320, seed=21))
    assert run_cli("up", data_dir=data).returncode == 0
    try:
        again = run_cli("up", data_dir=data)
        assert again.returncode == 0 and "already running" in again.stdout
        result = run_cli("submit", str(path), "--batch-id", "cli_pause", data_dir=data)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == job_id_for("cli_pause")
        settings = Settings(data_dir=data)
        wait_checkpoint(settings, job_id_for("cli_pause"),
                        lambda c: 10 <= c["processed_documents"] < 200)
        result = run_cli("pause", data_dir=data)  # no job: the last submitted
        assert result.returncode == 0 and "PAUSED" in result.stdout, result.stderr
        paused_at = assert_paused_and_still(settings, "cli_pause")
        assert paused_at < 320

        assert run_cli("down", data_dir=data).returncode == 0
        assert run_cli("ps", data_dir=data).returncode == 1
        assert run_cli("up", data_dir=data).returncode == 0
        status = run_cli("status", "cli_pause", data_dir=data)
        assert "PAUSED" in status.stdout and f"Processed:           {paused_at} " in status.stdout
        assert processed(settings, "cli_pause") == paused_at

        result = run_cli("resume", "cli_pause", data_dir=data)
        assert result.returncode == 0 and "re-sent" in result.stdout, result.stderr
        monitor = run_cli("monitor", "cli_pause", "--interval", "0.5", data_dir=data)
        assert monitor.returncode == 0 and "Status: COMPLETED" in monitor.stdout
        assert_exactly_once(settings, "cli_pause", 320)
    finally:
        run_cli("down", data_dir=data)


def test_pause_and_resume_as_raw_json_from_another_kafka_client(stack: Stack,
                                                                tmp_path: Path) -> None:
    settings = stack.settings
    path = write_jsonl(tmp_path / "b.jsonl", corpus_lines(300, seed=22))
    job_id = submit(settings, path, "raw_ctl").job_id
    wait_checkpoint(settings, job_id, lambda c: 10 <= c["processed_documents"] < 200)
    producer = kafka_python(settings)
    control = f"{settings.topic_prefix}.control"
    producer.send(control, job_id, {"command": "pause", "job_id": job_id})
    producer.producer.flush()
    assert_paused_and_still(settings, "raw_ctl")
    # a batch id stands in for the job id
    producer.send(control, "raw_ctl", {"command": "resume", "batch_id": "raw_ctl"})
    producer.close()
    assert_exactly_once(settings, "raw_ctl", 300)


def test_two_jobs_one_paused_the_other_completes(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    slow = write_jsonl(tmp_path / "slow.jsonl", corpus_lines(300, seed=23))
    job = submit(settings, slow, "two_a").job_id
    wait_checkpoint(settings, job, lambda c: 5 <= c["processed_documents"] < 200)
    send_control(settings, ControlCommand.PAUSE, "two_a", timeout_s=30)
    other = write_jsonl(tmp_path / "other.jsonl", corpus_lines(60, seed=24))
    submit(settings, other, "two_b")
    assert_exactly_once(settings, "two_b", 60)
    assert_paused_and_still(settings, "two_a", quiet_s=2.0)
    send_control(settings, ControlCommand.RESUME, "two_a", timeout_s=30)
    assert_exactly_once(settings, "two_a", 300)


def test_stop_is_final_and_resubmission_is_refused(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    path = write_jsonl(tmp_path / "s.jsonl", corpus_lines(300, seed=25))
    job = submit(settings, path, "stopme").job_id
    wait_checkpoint(settings, job, lambda c: 5 <= c["processed_documents"] < 200)
    cp = send_control(settings, ControlCommand.STOP, None, timeout_s=30)
    assert cp.status == "STOPPED"
    with pytest.raises(UsageError, match=rf"job {job} \(batch stopme\): the job is STOPPED"):
        submit(settings, path, "stopme")
    with pytest.raises(UsageError, match="STOPPED"):
        send_control(settings, ControlCommand.RESUME, "stopme", timeout_s=5)
    # A raw resume from another client is ignored too: stop is final. The materializer folds
    # every control record of a known job into `updated_at`; once that shows the second the
    # resume was sent in (or later), the resume has been read, and the job is still STOPPED.
    sent = int(time.time())
    producer = kafka_python(settings)
    producer.send(f"{settings.topic_prefix}.control", key=job,
                  value={"command": "resume", "job_id": job})
    # A document sent for the batch by any producer: ingest refuses it by the CLI's rule.
    producer.send(f"{settings.topic_prefix}.submissions", key="stopme",
                  value={"batch_id": "stopme", "id": "late", "text": "Fire broke out in Oslo."})
    producer.close()
    cp = wait_checkpoint(settings, job, lambda c: checkpoint_epoch(c) >= sent)
    assert cp["status"] == "STOPPED" and cp["processed_documents"] < 300
    ingest_log = settings.data_dir / "logs" / "ingest.log"
    deadline = time.monotonic() + 60
    while ("submission refused: the job is STOPPED and cannot be resumed or resubmitted"
           not in ingest_log.read_text()):
        assert time.monotonic() < deadline, "ingest did not refuse the raw submission"
        time.sleep(0.2)
    cp = read_checkpoint_or_none(settings, job)
    assert cp is not None and cp["status"] == "STOPPED" and "late" not in cp["processed_doc_ids"]


def test_retry_failed_touches_only_failed_documents(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    lines = corpus_lines(40, seed=26)
    broken = [*lines, json.dumps({"id": "fixme", "text": 17}), json.dumps({"id": "fix2"})]
    path = write_jsonl(tmp_path / "r.jsonl", broken)
    job = submit(settings, path, "retry").job_id
    cp = wait_checkpoint(settings, job, lambda c: c["status"] != "RUNNING")
    assert cp["status"] == "COMPLETED" and sorted(cp["failed_doc_ids"]) == ["fix2", "fixme"]
    fixed = [*lines, json.dumps({"id": "fixme", "text": "Acme Corp bought Beta Ltd in Oslo."}),
             json.dumps({"id": "fix2", "text": "Police arrested a man in Lyon on Monday."})]
    write_jsonl(path, fixed)
    submit(settings, path, "retry", retry_failed=True)
    cp = wait_checkpoint(settings, job, lambda c: c["processed_documents"] == 42)
    assert cp["failed_documents"] == 0 and cp["status"] == "COMPLETED"
    results = read_results(results_path(settings.data_dir, "retry"))
    assert len(results) == len({r["id"] for r in results}) == 42
    ingest_log = (settings.data_dir / "logs" / "ingest.log").read_text().splitlines()
    runs = [json.loads(x) for x in ingest_log if "submission ingested" in x]
    assert [(r["sent"], r["skipped"]) for r in runs] == [(40, 0), (2, 40)]


def test_batch_from_any_kafka_producer(stack: Stack) -> None:
    settings = stack.settings
    producer = kafka_python(settings)
    topic = f"{settings.topic_prefix}.submissions"
    docs = [json.loads(line) for line in corpus_lines(50, seed=27)]
    for d in docs:
        producer.send(topic, "from_kafka", {"batch_id": "from_kafka", **d,
                                                      "source": "wire"})
    producer.send(topic, "from_kafka", {"batch_id": "from_kafka", "id": "bad"})
    producer.send(topic, "from_kafka", {"batch_id": "from_kafka", "end": True,
                                                  "count": 51})
    producer.producer.flush()
    cp = wait_checkpoint(settings, job_id_for("from_kafka"), lambda c: c["status"] != "RUNNING")
    assert cp["status"] == "COMPLETED" and cp["total_documents"] == 51
    assert cp["processed_documents"] == 50 and cp["failed_doc_ids"] == ["bad"]
    assert "has no `text`" in cp["failures"]["bad"]["error"]
    results = read_results(results_path(settings.data_dir, "from_kafka"))
    assert len(results) == 50 and results[0]["meta"] == {"source": "wire", "published":
                                                         results[0]["meta"]["published"]}
    # Sending documents of the finished batch again is skipped by ingest without reopening
    # the job (a late stream document must not make its total unknown again).
    for d in docs[:10]:
        producer.send(topic, "from_kafka", {"batch_id": "from_kafka", **d})
    producer.send(topic, "from_kafka", {"batch_id": "from_kafka", "end": True,
                                                  "count": 51})
    producer.close()
    log = settings.data_dir / "logs" / "ingest.log"
    deadline = time.monotonic() + 120
    while "stream document of a finished batch skipped" not in log.read_text():
        assert time.monotonic() < deadline, "ingest never skipped the late documents"
        time.sleep(0.2)
    after = wait_checkpoint(settings, job_id_for("from_kafka"), lambda c: True)
    assert after["status"] == "COMPLETED"
    assert after["metadata"]["submission_id"] == cp["metadata"]["submission_id"]
    assert after["processed_documents"] == 50 and after["total_documents"] == 51
    assert len(read_results(results_path(settings.data_dir, "from_kafka"))) == 50


def test_malformed_and_unknown_control_messages_are_ignored_and_logged(
    stack: Stack, tmp_path: Path
) -> None:
    settings = stack.settings
    producer = kafka_python(settings)
    control = f"{settings.topic_prefix}.control"
    producer.send(control, "x", b"{not json")
    producer.send(control, "x", b"[1, 2]")
    producer.send(control, "x", {"command": "explode", "job_id": "x"})
    unknown = job_id_for("never_submitted")
    producer.send(control, unknown, {"command": "pause", "job_id": unknown})
    producer.close()
    # every service survives and a batch still completes
    path = write_jsonl(tmp_path / "ok.jsonl", corpus_lines(20, seed=28))
    submit(settings, path, "after_garbage")
    assert_exactly_once(settings, "after_garbage", 20)
    assert all(p.alive() for p in stack.procs.values())
    logs = {name: (settings.data_dir / "logs" / f"{name}.log").read_text()
            for name in ("ner", "checkpoint")}
    for text in logs.values():
        assert "control message is not valid JSON" in text
        assert "control message must be a JSON object" in text
        assert "unknown command 'explode'" in text
    assert "control message for an unknown job" in logs["checkpoint"]


def test_cleanup_removes_only_ended_jobs(stack: Stack, tmp_path: Path, capsys: Any) -> None:
    from eventpipe.checkpoint.reader import CheckpointReader
    from eventpipe.cli.stack_commands import cleanup

    settings = stack.settings
    done = submit(settings, write_jsonl(tmp_path / "d.jsonl", corpus_lines(10, 30)), "old").job_id
    assert_exactly_once(settings, "old", 10)
    paused = submit(settings, write_jsonl(tmp_path / "p.jsonl", corpus_lines(300, 31)),
                    "keep").job_id
    wait_checkpoint(settings, paused, lambda c: c["processed_documents"] >= 5)
    send_control(settings, ControlCommand.PAUSE, "keep", timeout_s=30)

    assert cleanup(settings, "1h") == 0
    assert "0 job(s) removed" in capsys.readouterr().out
    assert cleanup(settings, "0s") == 0
    assert "1 job(s) removed" in capsys.readouterr().out
    time.sleep(1.5)  # the materializer must not write the removed job back
    assert not (settings.checkpoint_dir / f"{done}.json").exists()
    assert (settings.checkpoint_dir / f"{paused}.json").exists()
    reader = CheckpointReader(settings)
    try:
        while reader.poll(timeout_s=1.0):
            pass
        assert done not in reader.table.jobs and paused in reader.table.jobs
        assert reader.table.control.command(done) is None
    finally:
        reader.close()


def test_link_runs_the_batch_level_work_again(stack: Stack, tmp_path: Path,
                                              capsys: Any) -> None:
    import argparse

    from eventpipe.cli.main import cmd_link

    settings = stack.settings
    submit(settings, write_jsonl(tmp_path / "l.jsonl", corpus_lines(30, 32)), "relink")
    assert_exactly_once(settings, "relink", 30)
    stats = settings.data_dir / "batch_stats_relink.json"
    first = json.loads(stats.read_text())
    stats.unlink()
    args = argparse.Namespace(job="relink")
    assert cmd_link(args, settings) == 0
    assert "COMPLETED" in capsys.readouterr().out
    again = json.loads(stats.read_text())
    assert again["event_links"] == first["event_links"]
    assert again["documents"] == first["documents"]
    with pytest.raises(UsageError, match="unknown job"):
        cmd_link(argparse.Namespace(job="never_there"), settings)
