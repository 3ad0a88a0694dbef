"""The one interface every storage backend implements. The sink knows only this."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from eventpipe import __version__
from eventpipe.errors import BackendUnavailable as BackendUnavailable
from eventpipe.errors import StorageError as StorageError
from eventpipe.models import SCHEMA_VERSION, DocumentMessage, FailedDocument

# One processed document as every backend stores it (and as a JSONL line reads):
# id, job_id, batch_id, text, meta, entities, triplets, events, timings_ms, sentences,
# predicates, result_version, versions (pipeline, schema, models by stage), saved_at.
ResultRecord = dict[str, Any]


class Backend(Protocol):
    name: str

    def save_documents(self, records: Sequence[ResultRecord]) -> None:
        """Save processed documents idempotently, keyed by (job_id, id): saving one again
        overwrites it, never duplicates it. Raises BackendUnavailable when unreachable."""

    def save_failures(self, failures: Sequence[FailedDocument]) -> None:
        """Record failed documents: stage, reason, class, attempts, times and the payload to
        replay them from (idempotent, same key)."""

    def load_failures(self, batch_id: str, job_id: str) -> dict[str, FailedDocument]:
        """The newest failure record of each failed document of a job, by document id."""

    def check(self) -> None:
        """Raise BackendUnavailable unless the backend answers now (readiness)."""

    def save_batch_outputs(self, job_id: str, batch_id: str, links: Sequence[dict[str, Any]],
                           storylines: Sequence[dict[str, Any]], stats: dict[str, Any],
                           result_version: int = 1) -> None:
        """Replace a job's event links, storylines and batch statistics (those of the job's
        result version: a reprocess is a job of its own and keeps the earlier ones)."""

    def close(self) -> None: ...


def result_record(doc: DocumentMessage, saved_at: str) -> ResultRecord:
    return {
        "schema_version": SCHEMA_VERSION,
        "id": doc.doc_id,
        "job_id": doc.job_id,
        "batch_id": doc.batch_id,
        "text": doc.text,
        "meta": doc.meta,
        "entities": [e.model_dump() for e in doc.entities],
        "triplets": [t.model_dump() for t in doc.triplets],
        "events": [e.model_dump() for e in doc.events],
        "timings_ms": doc.timings_ms,
        "events_backend": doc.events_backend,
        "events_fallback": doc.events_fallback,
        # What the events stage read (the DP stage's output): a reprocess from the events
        # stage starts from these, without parsing again.
        "sentences": [list(s) for s in doc.sentences],
        "predicates": [p.model_dump() for p in doc.predicates],
        "result_version": doc.result_version,
        "versions": {"pipeline": __version__, "schema": SCHEMA_VERSION,
                     "models": dict(doc.models)},
        "saved_at": saved_at,
    }
