"""Every document saved in every enabled backend exactly once: JSONL, a real PostgreSQL and
an Elasticsearch-API server, through the whole pipeline on the real broker."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from elasticsearch import Elasticsearch
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from eventpipe.jobs import submit
from eventpipe.models import job_id_for
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import TcpProxy, corpus_lines, read_results, wait_checkpoint, write_jsonl
from support.processes import kill_service

# On the embedded broker and on Apache Kafka (tests/conftest.py).
pytestmark = pytest.mark.both_brokers

# ~100 KB. The filler has no entities or triplets: the Elasticsearch emulator used in tests
# slows down quadratically with nested objects per document (a real cluster does not).
AWKWARD = ('He said "no" \\ then \'yes\'\ttab\r\x01\x1f and 🎉🚀 emoji; NUL here:\x00 end. '
           + "very " * 20_000 + "Acme Corp bought Beta Ltd in Oslo on Monday.")


N_OUTAGE = 500


def finished(c: dict[str, Any]) -> bool:
    return c["status"] in ("COMPLETED", "FAILED", "STOPPED")


@pytest.fixture
def full_settings(settings: Settings, pg_dsn: str, es_url: str) -> Settings:
    return settings.model_copy(update={
        "postgres_dsn": SecretStr(pg_dsn), "elasticsearch_url": es_url,
        "elasticsearch_index_prefix": settings.topic_prefix.lower(),
    })


@pytest.fixture
def full_stack(full_settings: Settings) -> Iterator[Stack]:
    stack = Stack(full_settings)
    stack.start()
    yield stack
    stack.stop()


def pg_documents(dsn: str, job_id: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT doc_id, text, nul_bytes_stripped FROM documents WHERE job_id = %s",
            (job_id,)).fetchall()
        ents = conn.execute(
            "SELECT doc_id, text, label, start_char, end_char FROM entities WHERE job_id = %s "
            "ORDER BY doc_id, ordinal", (job_id,)).fetchall()
        trips = conn.execute(
            "SELECT doc_id, count(*) FROM triplets WHERE job_id = %s GROUP BY doc_id",
            (job_id,)).fetchall()
    docs = {r[0]: {"text": r[1], "nul": r[2], "entities": [], "triplets": 0} for r in rows}
    for doc_id, text, label, start, end in ents:
        docs[doc_id]["entities"].append(
            {"text": text, "label": label, "start_char": start, "end_char": end})
    for doc_id, n in trips:
        docs[doc_id]["triplets"] = n
    return docs


def es_documents(settings: Settings, job_id: str) -> dict[str, dict[str, Any]]:
    assert settings.elasticsearch_url
    es = Elasticsearch(settings.elasticsearch_url)
    index = f"{settings.elasticsearch_index_prefix}-documents"
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"term": {"job_id": job_id}}, size=10_000)
    es.close()
    docs: dict[str, dict[str, Any]] = {}
    for hit in hits["hits"]["hits"]:
        src = hit["_source"]
        assert src["id"] not in docs, f"{src['id']} stored twice in Elasticsearch"
        docs[src["id"]] = src
    return docs


def assert_everywhere_once(settings: Settings, batch_id: str, n: int) -> None:
    job_id = job_id_for(batch_id)
    cp = wait_checkpoint(settings, job_id, finished, timeout_s=240)
    assert cp["status"] == "COMPLETED" and cp["processed_documents"] == n
    jsonl = read_results(results_path(settings.data_dir, batch_id))
    assert len(jsonl) == n and max(Counter(r["id"] for r in jsonl).values()) == 1
    assert settings.postgres_dsn is not None
    pg = pg_documents(settings.postgres_dsn.get_secret_value(), job_id)
    es = es_documents(settings, job_id)
    assert set(pg) == set(es) == {r["id"] for r in jsonl} == set(cp["processed_doc_ids"])


def test_all_backends_hold_the_same_documents(full_stack: Stack, tmp_path: Path) -> None:
    settings = full_stack.settings
    lines = [*corpus_lines(80, seed=41), json.dumps({"id": "awkward", "text": AWKWARD}),
             "{bad line"]
    job_id = submit(settings, write_jsonl(tmp_path / "b.jsonl", lines), "all3").job_id
    assert_everywhere_once(settings, "all3", 81)

    assert settings.postgres_dsn is not None
    pg = pg_documents(settings.postgres_dsn.get_secret_value(), job_id)
    es = es_documents(settings, job_id)
    jsonl = {r["id"]: r for r in read_results(results_path(settings.data_dir, "all3"))}
    for doc_id in [*sorted(jsonl)[:15], "awkward"]:
        assert pg[doc_id]["entities"] == jsonl[doc_id]["entities"] == es[doc_id]["entities"]
        assert pg[doc_id]["triplets"] == len(jsonl[doc_id]["triplets"])
        assert es[doc_id]["triplets"] == jsonl[doc_id]["triplets"]
        assert es[doc_id]["events"] == jsonl[doc_id]["events"]
    # Text round-trips unchanged, except that PostgreSQL cannot hold NUL: stripped, counted.
    assert jsonl["awkward"]["text"] == es["awkward"]["text"] == AWKWARD
    assert pg["awkward"]["text"] == AWKWARD.replace("\x00", "")
    assert pg["awkward"]["nul"] == 1
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        failed = conn.execute("SELECT doc_id, stage, error FROM failed_documents "
                              "WHERE job_id = %s", (job_id,)).fetchall()
    assert [(d, s) for d, s, _ in failed] == [("line-82", "ingest")]
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        stats = conn.execute("SELECT stats FROM batch_statistics WHERE job_id = %s",
                             (job_id,)).fetchone()
        links = conn.execute("SELECT count(*) FROM event_links WHERE job_id = %s",
                             (job_id,)).fetchone()
    assert stats is not None and stats[0]["documents"]["processed"] == 81
    assert links is not None and links[0] == stats[0]["event_links"]


def test_sigkill_sink_exactly_once_in_every_backend(full_stack: Stack, tmp_path: Path) -> None:
    settings = full_stack.settings
    job_id = submit(settings, write_jsonl(tmp_path / "k.jsonl", corpus_lines(250, seed=42)),
                    "kill3").job_id
    wait_checkpoint(settings, job_id, lambda c: 20 <= c["processed_documents"] < 200)
    kill_service(full_stack, "sink")
    wait_checkpoint(settings, job_id, finished, stack=full_stack, timeout_s=240)
    assert full_stack.procs["sink"].restarts == 1
    assert_everywhere_once(settings, "kill3", 250)


def test_postgres_outage_mid_batch_loses_nothing(
    settings: Settings, pg_dsn: str, tmp_path: Path
) -> None:
    target = conninfo_to_dict(pg_dsn)
    proxy = TcpProxy(int(target.get("port") or 5432))
    proxy.restore()
    via_proxy = make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port)
    stack = Stack(settings.model_copy(update={"postgres_dsn": SecretStr(via_proxy),
                                              "backend_retry_max_s": 1.0}))
    stack.start()
    try:
        job_id = submit(stack.settings,
                        write_jsonl(tmp_path / "o.jsonl", corpus_lines(N_OUTAGE, seed=43)),
                        "outage").job_id
        # Cut early in a batch long enough (~10 s of NLP here) that most of it is still to go.
        wait_checkpoint(stack.settings, job_id, lambda c: c["processed_documents"] >= 5)
        proxy.cut()
        sink_log = stack.settings.data_dir / "logs" / "sink.log"
        deadline = time.monotonic() + 60
        while "postgres unavailable; retrying" not in sink_log.read_text():
            assert time.monotonic() < deadline, "the sink never reported PostgreSQL gone"
            time.sleep(0.2)
        stalled = wait_checkpoint(stack.settings, job_id, lambda c: True)["processed_documents"]
        time.sleep(4.0)
        # Nothing counts as processed while PostgreSQL is gone (a batch being recorded at the
        # moment of the check may still land).
        during = wait_checkpoint(stack.settings, job_id, lambda c: True)["processed_documents"]
        assert during <= stalled + settings.stage_batch_size and during < N_OUTAGE
        proxy.restore()
        cp = wait_checkpoint(stack.settings, job_id, finished, timeout_s=240)
        assert cp["status"] == "COMPLETED" and cp["processed_documents"] == N_OUTAGE
        pg = pg_documents(pg_dsn, job_id)
        assert set(pg) == set(cp["processed_doc_ids"])
        jsonl = read_results(results_path(stack.settings.data_dir, "outage"))
        assert len(jsonl) == len({r["id"] for r in jsonl}) == N_OUTAGE
    finally:
        stack.stop()
        proxy.cut()
