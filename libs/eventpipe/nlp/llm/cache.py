"""A response cache for the language-model backends, on disk: a replay, a redelivery after a
crash or a re-run never pays twice for the same answer.

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
    def __init__(self, directory: Path, backend: str) -> None:
        self.directory = directory
        self.backend = backend
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            answer = json.loads(self._path(key).read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            answer = None
        if isinstance(answer, str):
            self.hits += 1
            LLM_CACHE.labels(self.backend, "hit").inc()
            return answer
        self.misses += 1
        LLM_CACHE.labels(self.backend, "miss").inc()
        return None

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

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
