"""The PostgreSQL backend against a real server (fixtures in tests/fixtures_pg.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from eventpipe.models import (
    DocumentMessage,
    Entity,
    Event,
    FailedDocument,
    FailureClass,
    Participant,
    PrepModifier,
    Stage,
    Triplet,
    job_id_for,
    reprocess_job_id,
)
from eventpipe.storage.base import BackendUnavailable, ResultRecord, StorageError, result_record
from eventpipe.storage.pg_migrate import available_migrations, migrate
from eventpipe.storage.postgres import PostgresBackend

JOB = job_id_for("batch-pg")
SAVED_AT = "2026-01-02T03:04:05Z"


def make_doc(doc_id: str, text: str = "Alice met Bob in Paris on Friday.", *,
             n_entities: int = 2, meta: dict[str, object] | None = None) -> DocumentMessage:
    entities = [
        Entity(text="Alice", label="PERSON", start_char=0, end_char=5),
        Entity(text="Bob", label="PERSON", start_char=10, end_char=13),
        Entity(text="Paris", label="GPE", start_char=17, end_char=22),
    ][:n_entities]
    return DocumentMessage(
        job_id=JOB, batch_id="batch-pg", doc_id=doc_id, text=text,
        meta=meta if meta is not None else {"published": "2025-04-19", "rank": 3},
        entities=entities,
        triplets=[Triplet(subject="Alice", action="meet", object="Bob", passive=False,
                          prep_modifiers=[PrepModifier(prep="in", object="Paris")],
                          sentence=0, start_char=6, end_char=9)],
        events=[Event(trigger="met", type="Meet",
                      participants=[Participant(text="Alice", role="agent", label="PERSON"),
                                    Participant(text="Bob", role="patient")],
                      location="Paris", time="Friday", sentence=0)],
        timings_ms={"ner": 1.5, "dp": 2.25},
    )


def record(doc: DocumentMessage, saved_at: str = SAVED_AT) -> ResultRecord:
    return result_record(doc, saved_at)


@pytest.fixture
def db(pg_dsn: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


def rows(db: psycopg.Connection[Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    return db.execute(query, params).fetchall()


def count(db: psycopg.Connection[Any], table: str) -> int:
    return int(rows(db, f"SELECT count(*) FROM {table}")[0][0])


# --- documents ----------------------------------------------------------------------------


def test_saves_documents_with_their_rows(pg_backend: PostgresBackend, db: Any) -> None:
    pg_backend.save_documents([record(make_doc("d1")), record(make_doc("d2", n_entities=3))])

    assert rows(db, "SELECT job_id, doc_id, batch_id, text, meta, timings_ms, saved_at,"
                    " nul_bytes_stripped FROM documents ORDER BY doc_id") == [
        (uuid.UUID(JOB), doc_id, "batch-pg", "Alice met Bob in Paris on Friday.",
         {"published": "2025-04-19", "rank": 3}, {"ner": 1.5, "dp": 2.25},
         datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 0)
        for doc_id in ("d1", "d2")
    ]
    assert rows(db, "SELECT doc_id, ordinal, text, label, start_char, end_char FROM entities"
                    " ORDER BY doc_id, ordinal") == [
        ("d1", 0, "Alice", "PERSON", 0, 5), ("d1", 1, "Bob", "PERSON", 10, 13),
        ("d2", 0, "Alice", "PERSON", 0, 5), ("d2", 1, "Bob", "PERSON", 10, 13),
        ("d2", 2, "Paris", "GPE", 17, 22),
    ]
    assert rows(db, "SELECT subject, action, object, negated, passive, agent, prep_modifiers,"
                    " sentence, start_char, end_char FROM triplets WHERE doc_id = 'd1'") == [
        ("Alice", "meet", "Bob", False, False, None, [{"prep": "in", "object": "Paris"}],
         0, 6, 9),
    ]
    assert rows(db, "SELECT ordinal, trigger, type, participants, location, time, sentence,"
                    " source FROM events WHERE doc_id = 'd2'") == [
        (0, "met", "Meet",
         # Every field of a participant is stored, the optional span and key included.
         [{"text": "Alice", "role": "agent", "label": "PERSON", "key": None,
           "start_char": None, "end_char": None},
          {"text": "Bob", "role": "patient", "label": None, "key": None,
           "start_char": None, "end_char": None}],
         "Paris", "Friday", 0, "rules"),
    ]
    assert count(db, "triplets") == 2
    assert count(db, "events") == 2


def test_a_reprocess_keeps_both_versions_and_latest_documents_answers_the_newest(
    pg_backend: PostgresBackend, db: Any
) -> None:
    first = make_doc("v-d1").model_copy(update={"models": {"llm": "rules"}})
    second = make_doc("v-d1").model_copy(update={
        "job_id": reprocess_job_id("batch-pg", 2), "result_version": 2,
        "models": {"llm": "openai:m"}, "events": []})
    pg_backend.save_documents([record(first), record(second)])
    kept = rows(db, "SELECT result_version, versions->'models'->>'llm' FROM documents "
                "WHERE batch_id = 'batch-pg' AND doc_id = 'v-d1' ORDER BY result_version")
    assert kept == [(1, "rules"), (2, "openai:m")]
    newest = rows(db, "SELECT job_id::text, result_version FROM latest_documents "
                  "WHERE batch_id = 'batch-pg' AND doc_id = 'v-d1'")
    assert newest == [(reprocess_job_id("batch-pg", 2), 2)]
    # Each version's child rows stay with its job.
    assert rows(db, "SELECT count(*) FROM events WHERE job_id = %s AND doc_id = 'v-d1'",
                JOB) == [(1,)]


def test_saving_again_leaves_one_set_of_rows_the_newest(
    pg_backend: PostgresBackend, db: Any
) -> None:
    batch = [record(make_doc(f"d{i}", n_entities=3)) for i in range(5)]
    pg_backend.save_documents(batch)
    pg_backend.save_documents(batch)
    assert [count(db, t) for t in ("documents", "entities", "triplets", "events")] == [
        5, 15, 5, 5]

    changed = record(make_doc("d2", "Changed text.", n_entities=1, meta={"v": 2}),
                     saved_at="2026-02-03T00:00:00Z")
    pg_backend.save_documents([changed])
    assert rows(db, "SELECT text, meta, saved_at FROM documents WHERE doc_id = 'd2'") == [
        ("Changed text.", {"v": 2}, datetime(2026, 2, 3, tzinfo=UTC))]
    assert rows(db, "SELECT text FROM entities WHERE doc_id = 'd2'") == [("Alice",)]
    assert [count(db, t) for t in ("documents", "entities", "triplets", "events")] == [
        5, 13, 5, 5]


AWKWARD_TEXTS = {
    "quotes": "He said \"no\"; she said 'yes' -- `maybe`; $1$ and $$dollar$$ %s %(x)s {}",
    "backslashes": r"C:\new\table \\server\share \x00 \u0000 \N",
    "control": "".join(chr(c) for c in range(1, 32)) + "\x7f\u2028\u2029",
    "emoji": "Flags 🇵🇱🇮🇳, family 👨‍👩‍👧, CJK 漢字かな 𠜎𠝹, RTL مرحبا, combining e\u0301",
    "large": ("Zainab Adeyemi visited Warsaw in May. ✓ " * 2600)[:100_000],
}


@pytest.mark.parametrize("text", AWKWARD_TEXTS.values(), ids=AWKWARD_TEXTS.keys())
def test_awkward_text_round_trips_unchanged(
    pg_backend: PostgresBackend, db: Any, text: str
) -> None:
    doc = make_doc("odd", text, meta={"title": text[:200], text[:50]: [text[:10]]})
    doc.entities = [Entity(text=text[:30], label="MISC", start_char=0, end_char=30)]
    pg_backend.save_documents([record(doc)])

    stored = rows(db, "SELECT text, meta, nul_bytes_stripped FROM documents")
    assert stored == [(text, {"title": text[:200], text[:50]: [text[:10]]}, 0)]
    assert rows(db, "SELECT text FROM entities") == [(text[:30],)]


def test_nul_bytes_are_stripped_and_counted(pg_backend: PostgresBackend, db: Any) -> None:
    doc = make_doc("nul", "a\x00b\x00c", meta={"k\x00": "v\x00\x00", "n": [1, "\x00"]})
    doc.entities = [Entity(text="Al\x00ice", label="PERSON", start_char=0, end_char=5)]
    doc.events[0].participants[0].text = "Ali\x00ce"
    doc.triplets[0].agent = "\x00"  # 2 + 4 in meta + 1 + 1 + 1 = 9
    pg_backend.save_documents([record(doc)])

    assert rows(db, "SELECT text, meta, nul_bytes_stripped FROM documents") == [
        ("abc", {"k": "v", "n": [1, ""]}, 9)]
    assert rows(db, "SELECT text FROM entities") == [("Alice",)]
    assert rows(db, "SELECT participants->0->>'text' FROM events") == [("Alice",)]
    assert rows(db, "SELECT agent FROM triplets") == [("",)]


def test_refused_data_is_a_storage_error_and_rolls_back_only_that_document(
    pg_backend: PostgresBackend, db: Any
) -> None:
    too_far = make_doc("too-far")
    too_far.entities[1].end_char = 2**40  # beyond integer: refused by the server
    with pytest.raises(StorageError) as caught:
        pg_backend.save_documents([record(make_doc("ok-1")), record(too_far)])
    assert not isinstance(caught.value, BackendUnavailable)
    assert "too-far" in str(caught.value)
    # One transaction per document: the first is kept, nothing of the refused one is.
    assert rows(db, "SELECT doc_id FROM documents") == [("ok-1",)]
    assert count(db, "entities") == 2

    surrogate = record(make_doc("surrogate", "broken \ud800 text"))
    not_a_uuid = record(make_doc("bad-job")) | {"job_id": "not-a-uuid"}
    for bad in (surrogate, not_a_uuid):
        with pytest.raises(StorageError) as caught:
            pg_backend.save_documents([bad])
        assert not isinstance(caught.value, BackendUnavailable)

    # The pooled connection is still usable afterwards.
    pg_backend.save_documents([record(make_doc("ok-2"))])
    assert count(db, "documents") == 2


# --- failures -----------------------------------------------------------------------------


def test_failures_upsert(pg_backend: PostgresBackend, db: Any) -> None:
    pg_backend.save_documents([record(make_doc("d1"))])
    first = FailedDocument(job_id=JOB, batch_id="batch-pg", doc_id="d1", stage=Stage.NER,
                           error="boom", at="2026-01-01T00:00:00Z")
    other = FailedDocument(job_id=JOB, batch_id="batch-pg", doc_id="d9", stage=Stage.INGEST,
                           error="not JSON\x00")
    pg_backend.save_failures([first, other])
    pg_backend.save_failures([first.model_copy(update={"stage": Stage.LLM, "error": "again"})])

    assert rows(db, "SELECT doc_id, batch_id, stage, error FROM failed_documents"
                    " ORDER BY doc_id") == [
        ("d1", "batch-pg", "llm", "again"), ("d9", "batch-pg", "ingest", "not JSON")]
    assert rows(db, "SELECT failed_at FROM failed_documents WHERE doc_id = 'd1'") == [
        (datetime(2026, 1, 1, tzinfo=UTC),)]
    assert count(db, "documents") == 1


def test_failure_records_keep_what_a_replay_needs(pg_backend: PostgresBackend, db: Any) -> None:
    payload = make_doc("d2", text="Alice\x00 met Bob.")
    failure = FailedDocument(job_id=JOB, batch_id="batch-pg", doc_id="d2", stage=Stage.LLM,
                             error="BackendUnreachable: down", at="2026-01-01T00:05:00Z",
                             failure_class=FailureClass.TRANSIENT, attempts=6,
                             first_failed_at="2026-01-01T00:00:00Z", replays=1,
                             payload=payload)
    bare = FailedDocument(job_id=JOB, batch_id="batch-pg", doc_id="line-3", stage=Stage.INGEST,
                          error="line 3 is not JSON", at="2026-01-01T00:00:00Z")
    pg_backend.save_failures([failure, bare])
    pg_backend.save_failures([failure])
    assert count(db, "failed_documents") == 2
    found = pg_backend.load_failures("batch-pg", JOB)
    assert set(found) == {"d2", "line-3"}
    got = found["d2"]
    assert (got.failure_class, got.attempts, got.first_failed_at, got.at, got.replays) == (
        FailureClass.TRANSIENT, 6, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", 1)
    assert got.payload is not None and got.payload.text == "Alice met Bob."  # NUL stripped
    assert got.payload.model_copy(update={"text": payload.text}) == payload
    assert found["line-3"].payload is None
    assert pg_backend.load_failures("batch-pg", job_id_for("another")) == {}


# --- migrations ---------------------------------------------------------------------------


def test_migrations_apply_once(pg_new_database: Any) -> None:
    dsn = pg_new_database()
    versions = [v for v, _ in available_migrations()]
    assert versions[0] == "0001_initial"
    assert migrate(dsn) == versions
    assert migrate(dsn) == []
    with psycopg.connect(dsn) as conn:
        assert migrate(conn) == []
        assert rows(conn, "SELECT version FROM schema_migrations ORDER BY version") == [
            (v,) for v in versions]
        tables = {r[0] for r in rows(conn, "SELECT tablename FROM pg_tables"
                                           " WHERE schemaname = 'public'")}
    assert {"documents", "entities", "triplets", "events", "failed_documents", "event_links",
            "storylines", "batch_statistics", "schema_migrations"} <= tables


def test_concurrent_migrations_do_not_fail(pg_new_database: Any) -> None:
    dsn = pg_new_database()
    start = threading.Barrier(3)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(migrate(dsn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(v for r in results for v in r) == [v for v, _ in available_migrations()]


def test_backend_applies_migrations_at_start(pg_new_database: Any) -> None:
    dsn = pg_new_database()
    PostgresBackend(dsn).close()
    PostgresBackend(dsn).close()
    with psycopg.connect(dsn) as conn:
        assert count(conn, "schema_migrations") == len(available_migrations())


# --- unreachable --------------------------------------------------------------------------

DEAD_DSN = "host=127.0.0.1 port=1 user=postgres password=s3cret-pw dbname=test"


def test_unreachable_server_is_backend_unavailable() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="PostgreSQL") as caught:
        PostgresBackend(DEAD_DSN, timeout=1)
    assert "s3cret-pw" not in str(caught.value)

    backend = PostgresBackend(DEAD_DSN, migrate=False, timeout=1)
    try:
        with pytest.raises(BackendUnavailable, match=r"PostgreSQL at 127\.0\.0\.1:1") as caught:
            backend.check()
        assert "refused" in str(caught.value).lower()
        assert "s3cret-pw" not in str(caught.value)
        with pytest.raises(BackendUnavailable):
            backend.save_documents([record(make_doc("d1"))])
        with pytest.raises(BackendUnavailable):
            backend.save_failures([FailedDocument(job_id=JOB, batch_id="b", doc_id="d1",
                                                  stage=Stage.NER, error="x")])
    finally:
        backend.close()
    assert time.monotonic() - started < 10


def test_unparseable_dsn_does_not_show_the_password() -> None:
    with pytest.raises(StorageError) as caught:
        PostgresBackend("postgresql://u:s3cret-pw@127.0.0.1:5432/db?no_such_option=1")
    assert "s3cret-pw" not in str(caught.value)


def test_check_answers_when_the_server_is_up(pg_backend: PostgresBackend) -> None:
    pg_backend.check()


class _Proxy:
    """A TCP forwarder to the test server that can be cut and restored, standing in for a
    PostgreSQL restart without touching the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for s in [*sockets, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(5)
        self._threads = []

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def test_reconnects_when_the_server_returns(pg_dsn: str, db: Any) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    proxy = _Proxy((str(params.get("host", "127.0.0.1")), int(params.get("port") or 5432)))
    proxy.start()
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port)
    backend = PostgresBackend(dsn, migrate=False, timeout=1)
    try:
        backend.save_documents([record(make_doc("before"))])
        proxy.stop()
        with pytest.raises(BackendUnavailable):
            backend.save_documents([record(make_doc("during"))])
        proxy.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                backend.save_documents([record(make_doc("after"))])
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "no reconnection within 15 s"
        backend.check()
    finally:
        backend.close()
        proxy.stop()
    saved = {r[0] for r in rows(db, "SELECT doc_id FROM documents")}
    assert {"before", "after"} <= saved
    assert "during" not in saved
