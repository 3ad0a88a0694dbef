"""Batch statistics: documents, failures by stage and reason, entities, events, storylines,
time per stage."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.nlp.events import fallback_kind
from eventpipe.storage.base import ResultRecord


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0


def batch_statistics(
    records: Iterable[ResultRecord], checkpoint: Checkpoint, links: int, storylines: int,
    total_time_s: float | None,
) -> dict[str, Any]:
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    types: Counter[str] = Counter()
    stage_times: dict[str, list[float]] = defaultdict(list)
    backends: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    documents = 0
    for record in records:
        documents += 1
        backends[str(record.get("events_backend") or "rules")] += 1
        if record.get("events_fallback"):
            fallbacks[fallback_kind(str(record["events_fallback"]))] += 1
        for e in record.get("entities") or []:
            labels[e["label"]][e["text"]] += 1
        for ev in record.get("events") or []:
            types[ev.get("type", "other")] += 1
        for stage, ms in (record.get("timings_ms") or {}).items():
            stage_times[stage].append(float(ms))
    failures = checkpoint.failures
    by_stage = Counter(f.stage for f in failures.values())
    by_reason = Counter(f.error.split(":")[0][:120] for f in failures.values())
    return {
        "job_id": checkpoint.job_id,
        "batch_id": checkpoint.batch_id,
        "documents": {"total": checkpoint.total_documents, "processed": documents,
                      "failed": len(failures)},
        "failed_by_stage": dict(by_stage),
        "failed_by_reason": dict(by_reason.most_common(20)),
        "entities_by_label": {label: {"count": sum(c.values()),
                                      "most_frequent": [t for t, _ in c.most_common(10)]}
                              for label, c in sorted(labels.items())},
        "events_by_type": dict(types.most_common()),
        # Which backend's events the documents got, and why those that fell back did.
        "events_by_backend": dict(backends.most_common()),
        "events_fallbacks": dict(fallbacks.most_common(20)),
        "event_links": links,
        "storylines": storylines,
        "time_per_stage_ms": {stage: {"mean": round(sum(v) / len(v), 3),
                                      "p95": round(_p95(v), 3)}
                              for stage, v in sorted(stage_times.items())},
        "total_time_s": round(total_time_s, 3) if total_time_s is not None else None,
    }
