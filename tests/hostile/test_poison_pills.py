"""Poison pills and borrowed permissions, on the real embedded broker with every service as
its own process: whatever arrives, each bad record fails alone with its reason, no service
dies (same pids, no restarts), and a normal batch afterwards completes exactly once."""

from __future__ import annotations

import json
import os
import pwd
import resource
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Producer, TopicPartition
from fastapi.testclient import TestClient
from pydantic import SecretStr

from eventpipe.api.tokens import Tokens
from eventpipe.jobs import submit
from eventpipe.kafka.clients import make_producer, make_reader
from eventpipe.models import MAX_ID_LENGTH, FailedDocument, job_id_for
from eventpipe.settings import TEST_HOOKS_ENV, Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, read_checkpoint_or_none, read_results, wait_checkpoint
from services.console.app import create_app

MB = 1024 * 1024


def pids(stack: Stack) -> dict[str, tuple[int, int]]:
    return {name: (p.pid, p.restarts) for name, p in stack.procs.items()}


def assert_untouched(stack: Stack, before: dict[str, tuple[int, int]]) -> None:
    stack.supervise()  # would start a dead service again, and count it
    assert pids(stack) == before
    assert all(p.alive() for p in stack.procs.values())


def completes_once(stack: Stack, tmp_path: Path, batch: str, n: int = 6) -> None:
    path = tmp_path / f"{batch}.jsonl"
    path.write_text("\n".join(corpus_lines(n, seed=hash(batch) % 1000)) + "\n")
    job_id = submit(stack.settings, path, batch).job_id
    cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING",
                         timeout_s=300)
    assert cp["status"] == "COMPLETED", cp.get("metadata")
    assert (cp["processed_documents"], cp["failed_documents"]) == (n, 0)
    ids = Counter(r["id"] for r in read_results(results_path(stack.settings.data_dir, batch)))
    assert len(ids) == n and max(ids.values()) == 1


def read_failed(settings: Settings, want: int, timeout_s: float = 60) -> list[FailedDocument]:
    reader = make_reader(settings)
    topic = f"{settings.topic_prefix}.failed"
    parts = reader.list_topics(topic, timeout=10).topics[topic].partitions
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    found: list[FailedDocument] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < want and time.monotonic() < deadline:
        for msg in reader.consume(100, timeout=0.5):
            if msg.error() is None:
                found.append(FailedDocument.model_validate_json(msg.value()))
    reader.close()
    return found


def test_poison_pills_fail_alone_and_every_service_lives(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    before = pids(stack)
    topic = settings.topic_prefix
    job = job_id_for("foreign")
    producer = make_producer(settings)
    # A stream document whose batch id holds an unpaired surrogate (the job id derivation
    # used to crash ingest on it), and closing messages with counts that cannot be reached.
    producer.produce(f"{topic}.submissions", key=b"s", value=b'{"batch_id": "bad\\ud800batch", '
                     b'"id": "x", "text": "Police arrested a man."}')
    # Work-topic messages: a surrogate in the doc id (NER built its failure from it), and
    # 2.5-million-character ids in a 5 MB message (copied whole into the failure record).
    producer.produce(f"{topic}.docs", key=b"d", value=json.dumps(
        {"job_id": job, "batch_id": "foreign", "doc_id": "bad\ud800id", "text": "t"}).encode())
    long_id = "i" * 2_500_000
    producer.produce(f"{topic}.docs", key=b"l", value=json.dumps(
        {"job_id": long_id, "batch_id": "foreign", "doc_id": long_id, "text": "t"}).encode())
    # Control: a 900 KB job id, and a null record meant to undo a stop.
    producer.produce(f"{topic}.control", key=b"p", value=json.dumps(
        {"command": "pause", "job_id": "j" * 900_000}).encode())
    assert producer.flush(30) == 0

    # A file batch holding a surrogate id, an 8 MB extra field (a line over the limit) and a
    # line under the limit whose document is over it.
    good = corpus_lines(8, seed=77)
    limit = settings.max_message_bytes
    near = {"id": "near-limit", "text": "A short text.", "extra": ""}
    near["extra"] = "x" * (limit - 40 - len(json.dumps(near)))
    lines = [*good[:4], '{"id": "bad\\ud800id", "text": "Police arrested a man in Lyon."}',
             json.dumps({"id": "big-extra", "text": "A short text.", "extra": "x" * (8 * MB)}),
             json.dumps(near), *good[4:]]
    assert len(lines[6]) <= limit < len(lines[5])
    path = tmp_path / "poison.jsonl"
    path.write_text("\n".join(lines) + "\n")
    job_id = submit(settings, path, "poison").job_id
    cp = wait_checkpoint(settings, job_id, lambda c: c["status"] != "RUNNING", timeout_s=300)
    assert cp["status"] == "COMPLETED"
    assert (cp["processed_documents"], cp["failed_documents"]) == (8, 3)
    failures = cp["failures"]
    assert "unpaired surrogate" in failures["line-5"]["error"]
    assert "bytes long; the limit is" in failures["line-6"]["error"]
    assert "as a message; the limit is" in failures["near-limit"]["error"]
    ids = Counter(r["id"] for r in read_results(results_path(settings.data_dir, "poison")))
    assert len(ids) == 8 and max(ids.values()) == 1

    # NER sent both broken work-topic messages to the failed topic, ids made safe and cut.
    found = {f.doc_id[:10]: f for f in read_failed(settings, want=2)}
    assert found["bad\ufffdid"].job_id == job
    assert len(found["i" * 10].doc_id) == MAX_ID_LENGTH
    assert len(found["i" * 10].error) <= 2000

    assert_untouched(stack, before)
    completes_once(stack, tmp_path, "after-poison")
    assert_untouched(stack, before)


def test_stream_ends_that_cannot_be_reached_fail_and_late_documents_do_not_reopen(
        stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    before = pids(stack)
    subs = f"{settings.topic_prefix}.submissions"
    producer = make_producer(settings)
    for count in ("many", -3, 2.5):
        batch = f"bad-count-{str(count).replace('.', '_')}"
        producer.produce(subs, key=batch.encode(), value=json.dumps(
            {"batch_id": batch, "id": "d1", "text": "Police arrested a man in Lyon."}).encode())
        producer.produce(subs, key=batch.encode(), value=json.dumps(
            {"batch_id": batch, "end": True, "count": count}).encode())
    producer.produce(subs, key=b"late", value=json.dumps(
        {"batch_id": "late", "id": "d1", "text": "Police arrested a man in Lyon."}).encode())
    producer.produce(subs, key=b"late", value=json.dumps(
        {"batch_id": "late", "end": True, "count": 1}).encode())
    assert producer.flush(30) == 0
    for count in ("many", "-3", "2_5"):
        cp = wait_checkpoint(settings, job_id_for(f"bad-count-{count}"),
                             lambda c: c["status"] != "RUNNING", timeout_s=120)
        assert cp["status"] == "FAILED"
        assert "count" in cp["metadata"]["status_reason"]
    late = job_id_for("late")
    wait_checkpoint(settings, late, lambda c: c["status"] == "COMPLETED", timeout_s=120)
    # A document after the closing message of a finished batch is skipped: still COMPLETED.
    # Then a batch on the same partition (same key): once it completes, ingest has read the
    # late document before it.
    for value in ({"batch_id": "late", "id": "d2", "text": "Police arrested a man in Lyon."},
                  {"batch_id": "after-late", "id": "a1", "text": "Fire broke out in Paris."},
                  {"batch_id": "after-late", "end": True, "count": 1}):
        producer.produce(subs, key=b"late", value=json.dumps(value).encode())
    assert producer.flush(30) == 0
    wait_checkpoint(settings, job_id_for("after-late"), lambda c: c["status"] == "COMPLETED",
                    timeout_s=120)
    cp = read_checkpoint_or_none(settings, late)
    assert cp is not None and cp["status"] == "COMPLETED" and cp["total_documents"] == 1
    assert_untouched(stack, before)


@pytest.fixture
def low_fd_stack(settings: Settings) -> Iterator[Stack]:
    """The stack started under an open-file limit of 160 (as `ulimit -n 160` before
    `eventpipe up`): every service inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (160, hard))
    s = Stack(settings)
    try:
        s.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    yield s
    s.stop()


def test_two_hundred_batches_under_an_open_file_limit_of_160(
        low_fd_stack: Stack, tmp_path: Path) -> None:
    stack = low_fd_stack
    before = pids(stack)
    with open(f"/proc/{stack.procs['sink'].pid}/limits") as f:
        assert any(line.startswith("Max open files") and line.split()[3] == "160" for line in f)
    line = corpus_lines(1, seed=5)[0]
    jobs = []
    for n in range(200):
        path = tmp_path / f"one-{n}.jsonl"
        path.write_text(line + "\n")
        jobs.append(submit(stack.settings, path, f"one-{n}").job_id)
    for job_id in jobs:
        cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING",
                             timeout_s=600)
        assert cp["status"] == "COMPLETED" and cp["processed_documents"] == 1
    assert_untouched(stack, before)
    completes_once(stack, tmp_path, "after-two-hundred")


def _send_as(user: pwd.struct_passwd, settings: Settings, value: dict[str, Any],
             secret: Path) -> bool:
    """Produce a raw submission as another user (a forked child that drops to that user);
    returns whether that user could open the file itself (it must not)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            try:
                secret.open("rb").close()
                code = 3
            except PermissionError:
                producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
                producer.produce(f"{settings.topic_prefix}.submissions", key=b"x",
                                 value=json.dumps(value).encode())
                code = 0 if producer.flush(30) == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 3), f"the child failed with {code}"
    return code == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")
def test_a_file_its_sender_cannot_read_never_reaches_a_results_file(
        stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    before = pids(stack)
    user = pwd.getpwnam("nobody")
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    secret = folder / "secret.jsonl"
    secret.write_text(json.dumps({"id": "s1", "text": "The secret plan of Acme Corp."}) + "\n")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)  # nobody may reach the folder, not into it
    batch = "stolen"
    could_read = _send_as(user, settings, {"kind": "file", "batch_id": batch,
                                           "job_id": job_id_for(batch), "path": str(secret)},
                          secret)
    assert not could_read
    # Through a link in a folder the sender owns: links are resolved before the check.
    link = Path("/tmp") / f"eventpipe-link-{os.getpid()}.jsonl"
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    try:
        _send_as(user, settings, {"kind": "file", "batch_id": batch + "-link",
                                  "job_id": job_id_for(batch + "-link"), "path": str(link)},
                 secret)
        log = Path(settings.data_dir) / "logs" / "ingest.log"
        deadline = time.monotonic() + 60
        while log.read_text().count("is not under an input root") < 2:
            assert time.monotonic() < deadline, "ingest did not refuse the submissions"
            time.sleep(0.2)
    finally:
        link.unlink(missing_ok=True)
    for name in (batch, batch + "-link"):
        assert read_checkpoint_or_none(settings, job_id_for(name)) is None
        assert not results_path(settings.data_dir, name).exists()
    assert not any("Acme" in p.read_text(errors="replace")
                   for p in settings.data_dir.glob("extracted_events_*.jsonl"))
    # The data folder and what the stack wrote in it are the stack user's alone.
    assert settings.data_dir.stat().st_mode & 0o777 == 0o700
    assert (settings.data_dir / "logs" / "ingest.log").stat().st_mode & 0o777 == 0o600
    completes_once(stack, tmp_path, "after-stolen")
    for p in [*settings.data_dir.glob("extracted_events_*"), *settings.checkpoint_dir.iterdir()]:
        assert p.stat().st_mode & 0o077 == 0, p
    assert_untouched(stack, before)


def test_a_job_waiting_for_a_closing_message_is_reported_stuck(settings: Settings) -> None:
    stack = Stack(settings.model_copy(update={"stuck_after_s": 2.0}),
                  services=("checkpoint", "sink", "llm", "dp", "ner", "ingest"))
    stack.start()
    try:
        producer = make_producer(stack.settings)
        producer.produce(f"{settings.topic_prefix}.submissions", key=b"open", value=json.dumps(
            {"batch_id": "open", "id": "d1", "text": "Police arrested a man in Lyon."}).encode())
        assert producer.flush(30) == 0
        cp = wait_checkpoint(stack.settings, job_id_for("open"),
                             lambda c: "stuck" in c["metadata"], timeout_s=120)
        assert cp["status"] == "RUNNING" and cp["processed_documents"] == 1
        assert "closing message" in cp["metadata"]["stuck"]["waiting_for"]
        # It moves again (closed): no longer stuck.
        producer.produce(f"{settings.topic_prefix}.submissions", key=b"open", value=json.dumps(
            {"batch_id": "open", "end": True, "count": 2}).encode())
        assert producer.flush(30) == 0
        cp = wait_checkpoint(stack.settings, job_id_for("open"),
                             lambda c: c["total_documents"] == 2, timeout_s=120)
    finally:
        stack.stop()


def test_documents_over_the_character_limit_fail_at_ingest_on_every_path(
        settings: Settings, tmp_path: Path) -> None:
    """EVENTPIPE_MAX_DOCUMENT_CHARS holds for a submitted file, documents streamed by any
    producer and a console upload: the long document fails at ingest naming its id, its
    length and the limit; one exactly at the limit and the rest of each batch go on."""
    limit = 1000
    token = "upload-token-for-tests"
    stack = Stack(settings.model_copy(update={"max_document_chars": limit,
                                              "api_token": SecretStr(token)}),
                  services=("checkpoint", "linker", "sink", "llm", "dp", "ner", "ingest"))
    stack.start()
    try:
        s = stack.settings
        good = corpus_lines(4, seed=31)
        prose = " ".join(json.loads(line)["text"] for line in corpus_lines(3, seed=32))
        assert len(prose) > limit + 1
        long_doc = {"id": "too-long", "text": prose[:limit + 1]}
        at_limit = {"id": "at-limit", "text": prose[:limit]}
        docs = [json.loads(line) for line in good] + [long_doc, at_limit]
        reason = f"document 'too-long' is {limit + 1} characters long; the limit is {limit}"

        path = tmp_path / "long-file.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        jobs = {"long-file": submit(s, path, "long-file").job_id}

        producer = make_producer(s)
        for d in docs:
            producer.produce(f"{s.topic_prefix}.submissions", key=b"long-stream",
                             value=json.dumps({"batch_id": "long-stream", **d}).encode())
        producer.produce(f"{s.topic_prefix}.submissions", key=b"long-stream",
                         value=json.dumps({"batch_id": "long-stream", "end": True,
                                           "count": len(docs)}).encode())
        assert producer.flush(30) == 0
        jobs["long-stream"] = job_id_for("long-stream")

        client = TestClient(create_app(s, Tokens.load(s)))
        r = client.post("/api/v1/jobs?batch_id=long-upload",
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/x-ndjson"},
                        content="".join(json.dumps(d) + "\n" for d in docs).encode())
        assert r.status_code == 201, r.text
        jobs["long-upload"] = r.json()["job_id"]

        for batch, job_id in jobs.items():
            cp = wait_checkpoint(s, job_id, lambda c: c["status"] != "RUNNING", timeout_s=300)
            assert cp["status"] == "COMPLETED", (batch, cp.get("metadata"))
            assert (cp["processed_documents"], cp["failed_documents"]) == (len(docs) - 1, 1)
            failure = cp["failures"]["too-long"]
            assert failure["stage"] == "ingest" and reason in failure["error"], failure
            assert "EVENTPIPE_MAX_DOCUMENT_CHARS" in failure["error"]
            ids = Counter(r["id"] for r in read_results(results_path(s.data_dir, batch)))
            assert ids == Counter(d["id"] for d in docs if d is not long_doc), batch
    finally:
        stack.stop()


@pytest.mark.timeout(600)
def test_a_document_that_kills_its_stage_twice_fails_and_the_batch_completes(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A document that kills the NER process (the test hook SIGKILLs it, as the OOM killer
    would) while the supervisor starts it again: the batch it came in is split, the document
    kills NER a second time alone and is then failed with that reason; every other document
    is processed exactly once, and the stage goes on."""
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    stack = Stack(settings.model_copy(update={"test_kill_doc_id": "killer"}),
                  services=("checkpoint", "linker", "sink", "llm", "dp", "ner", "ingest"))
    stack.start()
    try:
        s = stack.settings
        good = corpus_lines(8, seed=41)
        killer = json.dumps({"id": "killer", "text": "Police arrested a man in Lyon."})
        path = tmp_path / "killer.jsonl"
        path.write_text("\n".join([*good[:4], killer, *good[4:]]) + "\n")
        job_id = submit(s, path, "killer").job_id
        cp = wait_checkpoint(s, job_id, lambda c: c["status"] != "RUNNING", timeout_s=500,
                             stack=stack)  # starts dead services again, as `run` and `up` do
        assert cp["status"] == "COMPLETED", cp.get("metadata")
        assert (cp["processed_documents"], cp["failed_documents"]) == (8, 1)
        failure = cp["failures"]["killer"]
        assert failure["stage"] == "ner", failure
        assert "killed the ner process 2 times" in failure["error"], failure
        ids = Counter(r["id"] for r in read_results(results_path(s.data_dir, "killer")))
        assert ids == Counter(json.loads(line)["id"] for line in good)
        # Killed exactly twice (the first time with its neighbours, then alone); no other
        # service died.
        assert {name: p.restarts for name, p in stack.procs.items()} == {
            name: 2 if name == "ner" else 0 for name in stack.procs}
        before = pids(stack)
        completes_once(stack, tmp_path, "after-killer")
        assert_untouched(stack, before)
    finally:
        stack.stop()
