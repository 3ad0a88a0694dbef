"""The PostgreSQL backend: one row per document in `documents`, its entities, triplets and
events in child tables, failures in `failed_documents` (schema: storage/migrations/).

Each document is written in its own transaction: the document row is upserted and its child
rows are deleted and inserted again, so saving a document twice leaves one set of rows, the
newer one. Values always travel as query parameters.

NUL bytes: PostgreSQL text and jsonb cannot hold U+0000, and a document carrying one would
otherwise be refused for good. So every text value written (document text, entity, triplet
and event strings, strings and keys inside meta and the other JSON columns, error messages)
has its NUL bytes removed, and the document row records how many were removed in
`nul_bytes_stripped`. Ids are left as they are: they cannot hold control characters anyway.

Unreachable server, lost connection, pool timeout: BackendUnavailable (the sink retries).
Data PostgreSQL refuses (a job id that is not a UUID, a number out of range, text that is not
valid Unicode): StorageError. Messages never contain the password."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from eventpipe.models import FailedDocument
from eventpipe.storage.base import BackendUnavailable, ResultRecord, StorageError
from eventpipe.storage.pg_migrate import migrate as apply_migrations

log = logging.getLogger(__name__)

_UPSERT_DOCUMENT = """
INSERT INTO documents
    (job_id, doc_id, batch_id, text, meta, timings_ms, saved_at, result_version, versions,
     nul_bytes_stripped)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (job_id, doc_id) DO UPDATE SET
    batch_id = EXCLUDED.batch_id,
    result_version = EXCLUDED.result_version,
    versions = EXCLUDED.versions,
    text = EXCLUDED.text,
    meta = EXCLUDED.meta,
    timings_ms = EXCLUDED.timings_ms,
    saved_at = EXCLUDED.saved_at,
    nul_bytes_stripped = EXCLUDED.nul_bytes_stripped
"""
_DELETE_ENTITIES = "DELETE FROM entities WHERE job_id = %s AND doc_id = %s"
_DELETE_TRIPLETS = "DELETE FROM triplets WHERE job_id = %s AND doc_id = %s"
_DELETE_EVENTS = "DELETE FROM events WHERE job_id = %s AND doc_id = %s"
_INSERT_ENTITY = """
INSERT INTO entities (job_id, doc_id, ordinal, text, label, start_char, end_char)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
_INSERT_TRIPLET = """
INSERT INTO triplets (job_id, doc_id, ordinal, subject, action, object, negated, passive,
                      agent, prep_modifiers, sentence, start_char, end_char)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_INSERT_EVENT = """
INSERT INTO events (job_id, doc_id, ordinal, trigger, type, participants, location, time,
                    sentence, source)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_UPSERT_FAILURE = """
INSERT INTO failed_documents (job_id, doc_id, batch_id, stage, error, failed_at,
                              schema_version, failure_class, attempts, first_failed_at,
                              replays, quarantined, payload)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (job_id, doc_id) DO UPDATE SET
    batch_id = EXCLUDED.batch_id,
    stage = EXCLUDED.stage,
    error = EXCLUDED.error,
    failed_at = EXCLUDED.failed_at,
    schema_version = EXCLUDED.schema_version,
    failure_class = EXCLUDED.failure_class,
    attempts = EXCLUDED.attempts,
    first_failed_at = EXCLUDED.first_failed_at,
    replays = EXCLUDED.replays,
    quarantined = EXCLUDED.quarantined,
    payload = EXCLUDED.payload
"""
_SELECT_FAILURES = """
SELECT doc_id, batch_id, stage, error, failed_at, schema_version, failure_class, attempts,
       first_failed_at, replays, quarantined, payload
FROM failed_documents WHERE job_id = %s ORDER BY failed_at, doc_id
"""

# A server that is down (or a pool with every connection busy) for this long counts as
# unavailable; the sink's retry loop does the waiting, with backoff.
DEFAULT_TIMEOUT_S = 5.0
# Bounds the pool's own reconnection backoff, so it tries again soon after a long outage.
_RECONNECT_TIMEOUT_S = 30.0
_MAX_REASON = 500


class _NulStripper:
    """Removes NUL characters from the text values of one document, counting them."""

    def __init__(self) -> None:
        self.stripped = 0

    def text(self, value: str) -> str:
        count = value.count("\x00")
        if not count:
            return value
        self.stripped += count
        return value.replace("\x00", "")

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value


def _job_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise StorageError(f"postgres: job_id {value!r} is not a UUID") from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise StorageError(f"postgres: {value!r} is not an ISO-8601 timestamp") from None
    # The project writes UTC everywhere; a timestamp without a zone is taken as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _DocumentRows:
    """The parameter rows of one result record, NUL bytes removed."""

    def __init__(self, record: ResultRecord) -> None:
        clean = _NulStripper()
        self.job_id = _job_uuid(record["job_id"])
        self.doc_id: str = record["id"]
        key = (self.job_id, self.doc_id)
        self.entities = [
            (*key, i, clean.text(e["text"]), clean.text(e["label"]), e["start_char"],
             e["end_char"])
            for i, e in enumerate(record.get("entities") or [])
        ]
        self.triplets = [
            (*key, i, clean.text(t["subject"]), clean.text(t["action"]),
             clean.optional(t.get("object")), bool(t.get("negated", False)),
             bool(t.get("passive", False)), clean.optional(t.get("agent")),
             Jsonb(clean.json(t.get("prep_modifiers") or [])), t.get("sentence", 0),
             t.get("start_char", 0), t.get("end_char", 0))
            for i, t in enumerate(record.get("triplets") or [])
        ]
        self.events = [
            (*key, i, clean.text(e["trigger"]), clean.text(e["type"]),
             Jsonb(clean.json(e.get("participants") or [])), clean.optional(e.get("location")),
             clean.optional(e.get("time")), e.get("sentence", 0),
             clean.text(e.get("source", "rules")))
            for i, e in enumerate(record.get("events") or [])
        ]
        text = clean.text(record["text"])
        meta = Jsonb(clean.json(record.get("meta") or {}))
        timings = Jsonb(clean.json(record.get("timings_ms") or {}))
        versions = Jsonb(clean.json(record.get("versions") or {}))
        # Counted last, after every value of the document went through the stripper.
        self.document = (
            *key, record["batch_id"], text, meta, timings, _timestamp(record["saved_at"]),
            int(record.get("result_version") or 1), versions, clean.stripped,
        )


class PostgresBackend:
    name = "postgres"

    def __init__(
        self,
        dsn: str,
        pool_size: int = 4,
        migrate: bool = True,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            # The parser's message may quote the DSN, password included.
            raise StorageError("postgres: the PostgreSQL DSN cannot be parsed") from None
        self._password = str(params.get("password") or "")
        self._target = (
            f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
            f"/{params.get('dbname') or params.get('user') or ''}"
        )
        self._dsn = dsn
        self._timeout = timeout
        # Settings in the DSN win over these defaults.
        self._connect_kwargs: dict[str, Any] = {
            k: v
            for k, v in {
                "connect_timeout": max(2, round(timeout)),
                "application_name": "eventpipe",
            }.items()
            if k not in params
        }
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True, **self._connect_kwargs},
            # A connection broken by a server restart is replaced before it is handed out.
            check=ConnectionPool.check_connection,
            timeout=timeout,
            reconnect_timeout=_RECONNECT_TIMEOUT_S,
            name="eventpipe-postgres",
            open=True,
        )
        if migrate:
            try:
                with self._errors("cannot apply migrations"), self._pool.connection() as conn:
                    applied = apply_migrations(conn)
            except BaseException:
                self._pool.close()
                raise
            if applied:
                log.info("applied PostgreSQL migrations", extra={"versions": applied})

    # --- Backend -------------------------------------------------------------------------

    def save_documents(self, records: Sequence[ResultRecord]) -> None:
        if not records:
            return
        with self._errors("cannot save documents"), self._pool.connection() as conn:
            for record in records:
                self._save_document(conn, record)

    def save_failures(self, failures: Sequence[FailedDocument]) -> None:
        if not failures:
            return
        rows = []
        for f in failures:
            clean = _NulStripper()
            payload = (Jsonb(clean.json(f.payload.model_dump(mode="json")))
                       if f.payload is not None else None)
            rows.append((
                _job_uuid(f.job_id), f.doc_id, f.batch_id, str(f.stage.value),
                clean.text(f.error), _timestamp(f.at), f.schema_version,
                f.failure_class.value, f.attempts,
                _timestamp(f.first_failed_at or f.at), f.replays, f.quarantined, payload,
            ))
        with (
            self._errors("cannot save failures"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            conn.cursor().executemany(_UPSERT_FAILURE, rows)

    def load_failures(self, batch_id: str, job_id: str) -> dict[str, FailedDocument]:
        """A payload whose NUL bytes were stripped on the way in comes back without them."""
        with self._errors("cannot read failures"), self._pool.connection() as conn:
            rows = conn.execute(_SELECT_FAILURES, (_job_uuid(job_id),)).fetchall()
        found: dict[str, FailedDocument] = {}
        for (doc_id, batch, stage, error, failed_at, version, cls, attempts, first, replays,
             quarantined, payload) in rows:
            found[doc_id] = FailedDocument.model_validate({
                "schema_version": version, "job_id": job_id, "batch_id": batch,
                "doc_id": doc_id, "stage": stage, "error": error, "at": _iso(failed_at),
                "failure_class": cls, "attempts": attempts,
                "first_failed_at": _iso(first) if first else None, "replays": replays,
                "quarantined": quarantined, "payload": payload})
        return found

    def check(self) -> None:
        with self._errors("not ready"), self._pool.connection() as conn:
            conn.execute("SELECT 1")

    def save_batch_outputs(self, job_id: str, batch_id: str, links: Sequence[dict[str, Any]],
                           storylines: Sequence[dict[str, Any]], stats: dict[str, Any],
                           result_version: int = 1) -> None:
        """Replace the job's links, storylines and statistics in one transaction (keyed by
        job: a reprocess, a job of its own, keeps the earlier version's)."""
        job = _job_uuid(job_id)
        clean = _NulStripper()
        link_rows = [(job, x["source_doc_id"], x["source_event"], x["target_doc_id"],
                      x["target_event"], x["score"], Jsonb(clean.json(x["evidence"])))
                     for x in links]
        story_rows = [(job, x["storyline_id"], clean.optional(x["title"]),
                       Jsonb(clean.json(x["doc_ids"])), Jsonb(clean.json(x["events"])),
                       x["start"], x["end"]) for x in storylines]
        with (self._errors("cannot save batch outputs"), self._pool.connection() as conn,
              conn.transaction()):
            cur = conn.cursor()
            cur.execute("DELETE FROM event_links WHERE job_id = %s", (job,))
            cur.execute("DELETE FROM storylines WHERE job_id = %s", (job,))
            cur.executemany(
                "INSERT INTO event_links (job_id, source_doc_id, source_event, target_doc_id, "
                "target_event, score, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s)", link_rows)
            cur.executemany(
                "INSERT INTO storylines (job_id, storyline_id, title, doc_ids, events, "
                "start_time, end_time) VALUES (%s, %s, %s, %s, %s, %s, %s)", story_rows)
            cur.execute(
                "INSERT INTO batch_statistics (job_id, batch_id, stats, computed_at) "
                "VALUES (%s, %s, %s, now()) ON CONFLICT (job_id) DO UPDATE SET "
                "batch_id = EXCLUDED.batch_id, stats = EXCLUDED.stats, "
                "computed_at = EXCLUDED.computed_at",
                (job, batch_id, Jsonb(clean.json(stats))))

    def load_documents(self, job_id: str) -> list[ResultRecord]:
        """A job's processed documents with their entities and events (for batch-level work)."""
        job = _job_uuid(job_id)
        with self._errors("cannot load documents"), self._pool.connection() as conn:
            docs = conn.execute(
                "SELECT doc_id, batch_id, text, meta, timings_ms FROM documents "
                "WHERE job_id = %s ORDER BY doc_id", (job,)).fetchall()
            ents = conn.execute(
                "SELECT doc_id, text, label, start_char, end_char FROM entities "
                "WHERE job_id = %s ORDER BY doc_id, ordinal", (job,)).fetchall()
            events = conn.execute(
                "SELECT doc_id, trigger, type, participants, location, time, sentence, source "
                "FROM events WHERE job_id = %s ORDER BY doc_id, ordinal", (job,)).fetchall()
        records: dict[str, ResultRecord] = {
            d[0]: {"id": d[0], "job_id": job_id, "batch_id": d[1], "text": d[2],
                   "meta": d[3] or {}, "timings_ms": d[4] or {}, "entities": [], "events": []}
            for d in docs}
        for doc_id, text, label, start, end in ents:
            records[doc_id]["entities"].append(
                {"text": text, "label": label, "start_char": start, "end_char": end})
        for doc_id, trigger, type_, participants, location, time_, sentence, source in events:
            records[doc_id]["events"].append(
                {"trigger": trigger, "type": type_, "participants": participants or [],
                 "location": location, "time": time_, "sentence": sentence, "source": source})
        return list(records.values())

    def close(self) -> None:
        self._pool.close()

    # --- internals -----------------------------------------------------------------------

    def _save_document(self, conn: psycopg.Connection[Any], record: ResultRecord) -> None:
        try:
            rows = _DocumentRows(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(
                f"postgres: malformed result record {record.get('id')!r}: {exc!r}"
            ) from None
        key = (rows.job_id, rows.doc_id)
        try:
            # The pipeline sends the whole transaction in one round trip.
            with conn.pipeline(), conn.transaction():
                cur = conn.cursor()
                cur.execute(_UPSERT_DOCUMENT, rows.document)
                cur.execute(_DELETE_ENTITIES, key)
                cur.execute(_DELETE_TRIPLETS, key)
                cur.execute(_DELETE_EVENTS, key)
                if rows.entities:
                    cur.executemany(_INSERT_ENTITY, rows.entities)
                if rows.triplets:
                    cur.executemany(_INSERT_TRIPLET, rows.triplets)
                if rows.events:
                    cur.executemany(_INSERT_EVENT, rows.events)
        except (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError) as exc:
            raise StorageError(
                f"postgres: refused document {rows.doc_id!r} of job {rows.job_id}: "
                f"{self._reason(exc)}"
            ) from None

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turns psycopg's exceptions into the two the sink understands."""
        try:
            yield
        except StorageError:
            raise
        except PoolClosed:
            raise StorageError("postgres: the backend is closed") from None
        except PoolTimeout:
            raise BackendUnavailable(
                f"postgres: {doing}: PostgreSQL at {self._target}: {self._probe()}"
            ) from None
        except psycopg.OperationalError as exc:
            # Lost connection, server shut down or starting up, deadlock: worth retrying.
            raise BackendUnavailable(
                f"postgres: {doing}: PostgreSQL at {self._target}: {self._reason(exc)}"
            ) from None
        except (psycopg.Error, UnicodeEncodeError) as exc:
            raise StorageError(
                f"postgres: {doing}: PostgreSQL at {self._target}: {self._reason(exc)}"
            ) from None

    def _probe(self) -> str:
        """Why the pool has no connection to hand out: the pool does not say, so connect once
        directly and report libpq's reason."""
        try:
            with psycopg.connect(self._dsn, **self._connect_kwargs):
                pass
        except psycopg.Error as exc:
            return f"unreachable ({self._reason(exc)})"
        return f"no free connection in the pool within {self._timeout:g} s"

    def _reason(self, exc: BaseException) -> str:
        reason = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        return reason[:_MAX_REASON]
