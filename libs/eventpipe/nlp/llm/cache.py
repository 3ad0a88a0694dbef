"""A response cache for the language-model backends, on disk, or in PostgreSQL when one is
configured (shared by every events-stage worker of a cluster, whatever machine it runs on): a
replay, a redelivery after a crash or a reprocess never pays twice for the same answer.

The key is the SHA-256 of the model's identity (backend, model, token budget), the chat
messages and the output schema, so any change to the prompt, the schema or the model is a
miss. Only answers that validated are stored (an invalid one is retried with the error, and
caching it would repeat the failure). One file per answer under a two-character fan-out,
written to a temporary name and renamed, so readers never see half an answer and processes
sharing the folder (several events-stage workers) need no lock."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import Counter

log = logging.getLogger(__name__)

LLM_CACHE = Counter("eventpipe_llm_cache", "Language-model response cache lookups, by "
                    "backend and result (hit or miss); hit rate = hit / (hit + miss)",
                    ["backend", "result"])


def cache_key(identity: str, messages: Any, schema: dict[str, Any]) -> str:
    blob = json.dumps({"model": identity, "messages": messages, "schema": schema},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """On disk: one file per answer."""

    def __init__(self, directory: Path, backend: str) -> None:
        self.directory = directory
        self.backend = backend
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def _read(self, key: str) -> str | None:
        try:
            answer = json.loads(self._path(key).read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return answer if isinstance(answer, str) else None

    def get(self, key: str) -> str | None:
        answer = self._read(key)
        result = "hit" if answer is not None else "miss"
        if answer is not None:
            self.hits += 1
        else:
            self.misses += 1
        LLM_CACHE.labels(self.backend, result).inc()
        return answer

    def put(self, key: str, answer: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"answer": answer}, f, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk costs a miss later, not a document
            log.warning("response not cached", extra={"reason": str(exc)[:300]})

    def close(self) -> None:
        """Nothing held open."""

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class DatabaseResponseCache(ResponseCache):
    """In PostgreSQL (table `llm_response_cache`, migration 0004). A database that is down
    costs misses and unsaved answers, never a document: the connection is opened again at
    the next lookup."""

    def __init__(self, dsn: str, backend: str) -> None:
        super().__init__(Path(), backend)
        self.dsn = dsn
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg  # only a cache in a database needs it here

            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        return self._conn

    def _query(self, sql: str, params: tuple[str, ...]) -> Any:
        import psycopg

        try:
            return self._connection().execute(sql, params).fetchone()
        except psycopg.Error as exc:
            log.warning("response cache database unavailable", extra={
                "reason": str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__})
            self.close()
            return None

    def _read(self, key: str) -> str | None:
        row = self._query("SELECT answer FROM llm_response_cache WHERE key = %s", (key,))
        return row[0] if row and isinstance(row[0], str) else None

    def put(self, key: str, answer: str) -> None:
        # NUL cannot be stored in text; such an answer is simply not cached.
        if "\x00" not in answer:
            self._query("INSERT INTO llm_response_cache (key, answer) VALUES (%s, %s) "
                        "ON CONFLICT (key) DO NOTHING RETURNING key", (key, answer))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
