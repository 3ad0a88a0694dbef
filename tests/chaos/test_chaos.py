"""Chaos: a batch through the full stack (JSONL, PostgreSQL, Elasticsearch) while services
are SIGKILLed and restarted, the broker is frozen for 10 s, and the job is paused and resumed
at random moments. At the end: COMPLETED, every valid document exactly once in every
backend, checkpoint counts and id lists exactly right.

CI size by default; a larger run:  EVENTPIPE_CHAOS_DOCS=1000 pytest tests/chaos -s
Replay a failure:                  EVENTPIPE_CHAOS_SEED=<seed printed by the failing run>"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from elasticsearch import Elasticsearch
from pydantic import SecretStr

from eventpipe.jobs import send_control, submit
from eventpipe.models import ControlCommand
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, read_checkpoint_or_none, read_results, write_jsonl
from support.processes import kill_service

# On the embedded broker and on Apache Kafka (tests/conftest.py).
pytestmark = pytest.mark.both_brokers

DOCS = int(os.environ.get("EVENTPIPE_CHAOS_DOCS", "300"))
KILLS = {"ingest": 2, "ner": 2, "dp": 2, "llm": 2, "linker": 2, "sink": 3, "checkpoint": 3}
MALFORMED = ["{not json", '["array"]', '{"id": "no-text"}']


def test_chaos(settings: Settings, pg_dsn: str, es_url: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("EVENTPIPE_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} ({DOCS} documents)")
    stack = Stack(settings.model_copy(update={
        "kafka_bootstrap": None,  # its own embedded broker, to freeze
        "postgres_dsn": SecretStr(pg_dsn), "elasticsearch_url": es_url,
        "elasticsearch_index_prefix": settings.topic_prefix.lower(),
        "stage_batch_size": 16, "backend_retry_max_s": 2.0,
        # Its kills land at random, on whatever is in flight: a document it happens to kill
        # in twice must not be taken for one that kills its stage (tests/hostile does that).
        "max_stage_kills": max(KILLS.values()) + 1,
    }))
    stack.start()
    actions: list[str] = []
    try:
        lines = corpus_lines(DOCS, seed=seed % 1000)
        for bad in MALFORMED:
            lines.insert(rng.randrange(len(lines)), bad)
        path = write_jsonl(tmp_path / "chaos.jsonl", lines)
        s = stack.settings
        job_id = submit(s, path, "chaos").job_id

        def cp() -> dict[str, Any] | None:
            return read_checkpoint_or_none(s, job_id)

        def act(what: str) -> None:
            c = cp()
            done = f"{c['processed_documents']}/{c['total_documents']}" if c else "-"
            actions.append(f"{time.strftime('%H:%M:%S')} {what} (progress {done})")
            print(actions[-1])

        def control(command: ControlCommand) -> None:
            current = cp()
            if current is None or current["status"] not in ("RUNNING", "PAUSED"):
                return
            wanted = "PAUSED" if command is ControlCommand.PAUSE else "RUNNING"
            if current["status"] != wanted:
                send_control(s, command, job_id, timeout_s=60)
                act(command.value)

        plan = [name for name, n in KILLS.items() for _ in range(n)]
        rng.shuffle(plan)
        freeze_at = rng.randrange(len(plan))
        for step, victim in enumerate(plan):
            # Keep the job from finishing before the plan is through: pause it near the end.
            current = cp()
            if current and current["processed_documents"] > 0.6 * DOCS:
                control(ControlCommand.PAUSE)
            elif rng.random() < 0.2:
                control(rng.choice([ControlCommand.PAUSE, ControlCommand.RESUME]))
            kill_service(stack, victim)
            act(f"SIGKILL {victim}")
            time.sleep(rng.uniform(0.5, 1.5))
            for name in stack.supervise():
                act(f"restarted {name}")
            if step == freeze_at:
                assert stack.broker_pid is not None
                os.kill(stack.broker_pid, signal.SIGSTOP)
                act("SIGSTOP broker")
                time.sleep(10)
                os.kill(stack.broker_pid, signal.SIGCONT)
                act("SIGCONT broker")
        control(ControlCommand.RESUME)

        deadline = time.monotonic() + 420
        while True:
            for name in stack.supervise():
                act(f"restarted {name}")
            final = cp()
            if final and final["status"] in ("COMPLETED", "FAILED", "STOPPED"):
                break
            assert time.monotonic() < deadline, f"not finished; seed {seed}; {final}"
            time.sleep(0.5)
        act("finished")
        assert_exact(stack.settings, final, pg_dsn, DOCS, seed)
    finally:
        stack.stop()
        print(f"chaos seed {seed}: {len(actions)} actions")


def assert_exact(settings: Settings, cp: dict[str, Any], pg_dsn: str, n: int,
                 seed: int) -> None:
    where = f"(seed {seed})"
    assert cp["status"] == "COMPLETED", where
    assert cp["total_documents"] == n + len(MALFORMED), where
    assert cp["processed_documents"] == len(cp["processed_doc_ids"]) == n, where
    assert cp["failed_documents"] == len(cp["failed_doc_ids"]) == len(MALFORMED), where
    processed = set(cp["processed_doc_ids"])
    assert len(processed) == n and not processed & set(cp["failed_doc_ids"]), where

    jsonl = Counter(r["id"] for r in read_results(results_path(settings.data_dir, "chaos")))
    assert set(jsonl) == processed and max(jsonl.values()) == 1, where

    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT doc_id FROM documents WHERE job_id = %s",
                            (cp["job_id"],)).fetchall()
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT doc_id, ordinal FROM entities WHERE job_id = %s "
            "GROUP BY doc_id, ordinal HAVING count(*) > 1) d", (cp["job_id"],)).fetchone()
    assert {r[0] for r in rows} == processed and len(rows) == n, where
    assert dupes == (0,), where

    assert settings.elasticsearch_url
    es = Elasticsearch(settings.elasticsearch_url)
    index = f"{settings.elasticsearch_index_prefix}-documents"
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"term": {"job_id": cp["job_id"]}}, size=10_000)
    es.close()
    ids = Counter(h["_source"]["id"] for h in hits["hits"]["hits"])
    assert set(ids) == processed and max(ids.values()) == 1, where
    stats = json.loads((settings.data_dir / "batch_stats_chaos.json").read_text())
    assert stats["documents"]["processed"] == n, where
