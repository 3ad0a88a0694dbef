"""`eventpipe up --broker kafka` as a user runs it: a local Apache Kafka that keeps its data
on disk. The broker is SIGKILLed mid-batch and brought back by `up`; the job completes with
every valid document exactly once. Bad input is one clear line and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from eventpipe.models import job_id_for
from eventpipe.processes import pid_alive, wait_gone
from eventpipe.settings import Settings
from eventpipe.stack import StackState
from eventpipe.storage.jsonl import results_path
from helpers import (
    corpus_lines,
    kafka_libs_or_skip,
    read_results,
    run_cli,
    wait_checkpoint,
    write_jsonl,
)

MALFORMED = ["{not json", '["an array"]', '{"id": "no-text"}']


def foreign_cleanup_policies(bootstrap: str, topics: list[str]) -> dict[str, str]:
    """cleanup.policy of each topic as kafka-python (a pure-Python client) describes it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics], config_filter="all")
    finally:
        admin.close()
    by_topic = next(v for k, v in described.items() if str(k).lower().endswith("topic"))
    out = {}
    for topic in topics:
        entry = by_topic[topic]["cleanup.policy"]
        out[topic] = entry["value"] if isinstance(entry, dict) else entry
    return out


def stack_state(data: Path) -> StackState:
    state = StackState.load(data.resolve() / "run" / "stack.json")
    assert state is not None
    return state


# Two JVM starts and a batch: minutes on a loaded machine, beyond the suite's 300 s default.
@pytest.mark.timeout(1200)
def test_sigkill_apache_kafka_mid_batch_then_up_completes_exactly_once(tmp_path: Path) -> None:
    kafka_libs_or_skip()
    data = tmp_path / "data"
    lines = corpus_lines(250, seed=12)
    for i, bad in enumerate(MALFORMED):
        lines.insert(40 + 80 * i, bad)
    path = write_jsonl(tmp_path / "batch.jsonl", lines)
    valid_ids = {json.loads(line)["id"] for line in lines if line not in MALFORMED}
    settings = Settings(data_dir=data)
    job_id = job_id_for("kafka_kill")

    up = run_cli("up", "--broker", "kafka", data_dir=data, timeout=400)
    assert up.returncode == 0, up.stderr[-2000:]
    try:
        state = stack_state(data)
        assert state.broker_kind == "kafka" and state.broker_pid is not None
        assert pid_alive(state.broker_pid, "kafka.Kafka")
        ps = run_cli("ps", data_dir=data)
        assert f"bootstrap: {state.bootstrap} (Apache Kafka)" in ps.stdout, ps.stdout

        submitted = run_cli("submit", str(path), "--batch-id", "kafka_kill", data_dir=data)
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        cp = wait_checkpoint(settings, job_id, lambda c: c["processed_documents"] >= 20,
                             timeout_s=300)
        assert cp["processed_documents"] < 250, "the batch ended before the broker was killed"
        os.kill(state.broker_pid, signal.SIGKILL)
        assert wait_gone(state.broker_pid, 10)
        killed_at = cp["processed_documents"]

        again = run_cli("up", "--broker", "kafka", data_dir=data, timeout=400)
        assert again.returncode == 0, again.stderr[-2000:]
        restarted = stack_state(data)
        assert restarted.bootstrap == state.bootstrap  # the same port, the same data
        assert restarted.broker_pid != state.broker_pid

        final = wait_checkpoint(settings, job_id, lambda c: c["status"] in (
            "COMPLETED", "FAILED", "STOPPED"), timeout_s=400)
        print(f"\nbroker SIGKILLed at {killed_at}/253 processed; final {final['status']}")
        assert final["status"] == "COMPLETED"
        assert final["total_documents"] == 253
        assert final["processed_documents"] == len(final["processed_doc_ids"]) == 250
        assert set(final["processed_doc_ids"]) == valid_ids
        assert final["failed_documents"] == len(final["failed_doc_ids"]) == 3
        counts = Counter(r["id"] for r in read_results(results_path(data, "kafka_kill")))
        assert set(counts) == valid_ids and max(counts.values()) == 1

        # Another client (kafka-python, not librdkafka) reads the topics' configs.
        policies = foreign_cleanup_policies(
            state.bootstrap, [f"eventpipe.{n}" for n in ("checkpoints", "control", "docs")])
        assert policies == {"eventpipe.checkpoints": "compact", "eventpipe.control": "compact",
                            "eventpipe.docs": "delete"}
    finally:
        down = run_cli("down", data_dir=data, timeout=200)
    assert down.returncode == 0 and "keeps its topics" in down.stdout, down.stdout


@pytest.mark.timeout(1200)
def test_down_then_up_finds_the_topics_and_the_job(tmp_path: Path) -> None:
    """A stack stopped with `down` and started again keeps the job without a restore from
    the checkpoint files: the files are moved away, the job is still known."""
    kafka_libs_or_skip()
    data = tmp_path / "data"
    path = write_jsonl(tmp_path / "batch.jsonl", corpus_lines(30, seed=3))
    settings = Settings(data_dir=data)
    assert run_cli("up", "--broker", "kafka", data_dir=data, timeout=400).returncode == 0
    try:
        assert run_cli("submit", str(path), "--batch-id", "kept", data_dir=data).returncode == 0
        wait_checkpoint(settings, job_id_for("kept"), lambda c: c["status"] == "COMPLETED",
                        timeout_s=300)
        assert run_cli("down", data_dir=data, timeout=200).returncode == 0
        moved = tmp_path / "moved-checkpoints"
        settings.checkpoint_dir.rename(moved)
        again = run_cli("up", "--broker", "kafka", data_dir=data, timeout=400)
        assert again.returncode == 0, again.stderr[-2000:]
        # The materializer rebuilds the file from the topic that survived on disk.
        cp = wait_checkpoint(settings, job_id_for("kept"), lambda c: c["status"] == "COMPLETED",
                             timeout_s=120)
        assert cp["processed_documents"] == 30
    finally:
        run_cli("down", data_dir=data, timeout=200)


def test_unknown_broker_is_one_clear_line(tmp_path: Path) -> None:
    for command in ("up", "run"):
        args = [command, "--broker", "rabbit"] + ([__file__] if command == "run" else [])
        result = run_cli(*args, data_dir=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == "eventpipe: unknown broker 'rabbit': use embedded or kafka"


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    env_path = tmp_path / "empty-bin"
    env_path.mkdir()
    result = run_cli("up", "--broker", "kafka", data_dir=tmp_path / "data",
                     env_extra={"PATH": str(env_path)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Java not found" in result.stderr
    assert not (tmp_path / "data" / "run" / "stack.json").exists()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    kafka_libs_or_skip()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("up", "--broker", "kafka", data_dir=tmp_path / "data",
                         env_extra={"EVENTPIPE_BROKER_PORT": str(port)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert f"port {port} (Kafka client listener) is already in use" in result.stderr


def test_corrupt_log_directory_is_refused_and_kept(tmp_path: Path) -> None:
    kafka_libs_or_skip()
    log_dir = tmp_path / "data" / "kafka" / "data"
    (log_dir / "eventpipe.docs-0").mkdir(parents=True)
    segment = log_dir / "eventpipe.docs-0" / "00000000000000000000.log"
    segment.write_bytes(b"records a user cares about")
    (log_dir / "meta.properties").write_text("garbage without a cluster id\n")
    started = time.monotonic()
    result = run_cli("up", "--broker", "kafka", data_dir=tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "corrupt" in result.stderr, result.stderr
    assert segment.read_bytes() == b"records a user cares about"
    assert (log_dir / "meta.properties").read_text() == "garbage without a cluster id\n"
    assert time.monotonic() - started < 60  # refused before any JVM started
