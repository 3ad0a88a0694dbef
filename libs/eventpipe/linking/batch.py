"""The batch-level step of one job: load its processed documents, link their events, build
storylines and statistics, save them to every enabled backend."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.constants import TIME_FORMAT
from eventpipe.errors import BatchLevelError as BatchLevelError
from eventpipe.linking.clustering import (
    OnlineStorylines,
    Profile,
    profile_of,
    publication_order,
)
from eventpipe.linking.items import event_items, published
from eventpipe.linking.links import link_events
from eventpipe.linking.stats import batch_statistics
from eventpipe.linking.storylines import build_storylines
from eventpipe.settings import Settings
from eventpipe.storage.base import Backend, BackendUnavailable, ResultRecord, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOutputs:
    links: list[dict[str, Any]]
    storylines: list[dict[str, Any]]
    stats: dict[str, Any]


def load_records(backends: list[Backend], job_id: str, batch_id: str,
                 result_version: int = 1) -> list[ResultRecord]:
    """The job's documents from the first backend that can read them back (JSONL, then
    PostgreSQL, which keys them by job: a reprocess is a job of its own)."""
    for backend in backends:
        loader = getattr(backend, "load_documents", None)
        if loader is None:
            continue
        if backend.name == "jsonl":
            records: list[ResultRecord] = loader(batch_id, job_id, result_version)
        else:
            records = loader(job_id)
        return records
    raise BatchLevelError("batch-level work reads the documents back from the JSONL or "
                          "PostgreSQL backend; neither is enabled")


def document_profile(record: ResultRecord) -> Profile:
    """What storyline clustering reads of a saved document."""
    return profile_of(record["id"], record.get("text", ""),
                      [(e["text"], e["label"]) for e in record.get("entities") or []],
                      published(record.get("meta") or {}))


def compute(settings: Settings, checkpoint: Checkpoint, records: list[ResultRecord],
            live: OnlineStorylines | None = None) -> BatchOutputs:
    """`live`: the stories the linker formed while the job ran, used when they hold exactly
    the saved documents; else the documents are clustered again. Documents are taken in
    publication order (then id), not in the order they were saved, so running the step again
    gives the same outputs."""
    job_id = checkpoint.job_id
    started = time.perf_counter()
    records = sorted(records, key=lambda r: publication_order(published(r.get("meta") or {}),
                                                              r["id"]))
    clustering = live
    if clustering is None or set(clustering.story_of) != {r["id"] for r in records}:
        clustering = OnlineStorylines(settings.storyline_threshold)
        for record in records:
            clustering.add(document_profile(record))
    groups = clustering.finish()
    items = event_items(records)
    storylines = build_storylines(job_id, groups, items,
                                  {r["id"]: r.get("triplets") or [] for r in records})
    storyline_of = {d: s["storyline_id"] for s in storylines for d in s["doc_ids"]}
    links = link_events(items, storyline_of, settings.link_threshold)
    log.info("linked", extra={"job_id": job_id, "events": len(items), "links": len(links),
                              "storylines": len(storylines), "live": clustering is live,
                              "ms": round((time.perf_counter() - started) * 1000, 1)})
    try:
        created = datetime.strptime(checkpoint.created_at, TIME_FORMAT)
        total_s: float | None = (datetime.now(UTC) - created.replace(tzinfo=UTC)).total_seconds()
    except ValueError:
        total_s = None
    stats = batch_statistics(records, checkpoint, len(links), len(storylines), total_s)
    return BatchOutputs([link.to_json(job_id) for link in links], storylines, stats)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The step allocates a few hundred thousand small dicts (records, events, links) and
    frees them together at its end; the cycle collector would walk the growing heap again
    and again meanwhile (a third of the step's time on the pipeline bench's 1,000
    documents), though nothing it makes is a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_batch_level(settings: Settings, checkpoint: Checkpoint, backends: list[Backend],
                    live: OnlineStorylines | None = None) -> BatchOutputs:
    job_id, batch_id = checkpoint.job_id, checkpoint.batch_id
    try:
        with collector_paused():
            version = checkpoint.metadata.result_version or 1
            started = time.perf_counter()
            records = load_records(backends, job_id, batch_id, version)
            loaded = time.perf_counter()
            outputs = compute(settings, checkpoint, records, live)
            computed = time.perf_counter()
            for backend in backends:
                backend.save_batch_outputs(job_id, batch_id, outputs.links,
                                           outputs.storylines, outputs.stats,
                                           result_version=version)
            log.info("batch-level step", extra={
                "job_id": job_id, "load_ms": round((loaded - started) * 1000, 1),
                "compute_ms": round((computed - loaded) * 1000, 1),
                "save_ms": round((time.perf_counter() - computed) * 1000, 1)})
    except (BatchLevelError, BackendUnavailable):
        raise  # an unreachable backend is retried by the caller, not a failed job
    except (StorageError, OSError, ValueError, KeyError, TypeError) as exc:
        raise BatchLevelError(f"{type(exc).__name__}: {exc}"[:1000]) from exc
    return outputs
