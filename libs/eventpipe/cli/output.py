"""What the commands print: the checkpoint report, monitor lines, the run summary."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.models import JobStatus
from eventpipe.storage.jsonl import results_path


def status_report(cp: Checkpoint) -> str:
    total = cp.total_documents
    processed, failed = cp.processed_documents, cp.failed_documents
    pct = 100.0 * processed / total if total else 0.0
    lines = ["=" * 70, "CHECKPOINT STATUS", "=" * 70, f"Job ID: {cp.job_id}", ""]
    for label, value in [
        ("Status", cp.status.value), ("Batch ID", cp.batch_id), ("Total Documents", total),
        ("Processed", f"{processed} ({pct:.1f}%)"), ("Failed", failed),
        ("Remaining", max(0, total - processed - failed)),
        ("Created", cp.created_at), ("Updated", cp.updated_at),
    ]:
        lines.append(f"{label + ':':<21}{value}")
    reason = cp.metadata.status_reason
    if reason:
        lines.append(f"{'Reason:':<21}{reason}")
    lines += ["", "Recent Processed Documents (last 10):"]
    lines += [f"  ✓ {doc_id}" for doc_id in cp.processed_doc_ids[-10:]]
    lines += ["", f"Failed Documents ({failed}):"]
    for doc_id in cp.failed_doc_ids:
        f = cp.failures.get(doc_id)
        where = f"{f.stage}: {f.error}" if f else "?: ?"
        lines.append(f"  ✗ {doc_id} ({where})")
    return "\n".join(lines)


def monitor_line(n: int, cp: Checkpoint, rate_per_min: float) -> str:
    total = cp.total_documents
    processed = cp.processed_documents
    pct = 100.0 * processed / total if total else 0.0
    status = "PROGRESS" if cp.status is JobStatus.RUNNING else cp.status.value
    return (f"[{n}] {time.strftime('%H:%M:%S')} | Status: {status} | Progress: "
            f"{processed}/{total} ({pct:.1f}%) | Failed: {cp.failed_documents} | "
            f"Rate: {rate_per_min:.1f} docs/min")


def run_summary(
    cp: Checkpoint, data_dir: Path, elapsed_s: float, stats: dict[str, Any] | None = None
) -> str:
    per_doc = elapsed_s / cp.total_documents if cp.total_documents else 0.0
    lines = [
        f"Job {cp.job_id} (batch {cp.batch_id}): {cp.status.value} in {elapsed_s:.1f} s "
        f"({per_doc:.2f} s per document)",
        f"  total {cp.total_documents}, processed {cp.processed_documents}, "
        f"failed {cp.failed_documents}",
        f"  results:    {results_path(data_dir, cp.batch_id, cp.metadata.result_version or 1)}",
        f"  checkpoint: {data_dir / 'checkpoints' / (cp.job_id + '.json')}",
    ]
    failures = cp.failures
    if failures:
        lines.append("  failed documents:")
        for doc_id, f in list(failures.items())[:20]:
            lines.append(f"    ✗ {doc_id} ({f.stage}): {f.error}")
        if len(failures) > 20:
            lines.append(f"    ... and {len(failures) - 20} more (see the checkpoint file)")
    if stats:
        lines += ["  " + line for line in events_lines(stats)]
    return "\n".join(lines)


def saved_versions(path: Path) -> dict[str, object]:
    """The `versions` (pipeline, schema, models) of the first result in a results file."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
        found = json.loads(first).get("versions") if first.strip() else None
    except (OSError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


def versions_report(versions: dict[int, Checkpoint], data_dir: Path, this_job: str) -> str:
    """One line per result version of a batch: its job, status, counts and what made it."""
    newest = max(versions)
    lines = ["", "Result Versions:"]
    for v, cp in sorted(versions.items()):
        made = saved_versions(results_path(data_dir, cp.batch_id, v))
        models = made.get("models") or {}
        what = ", ".join(f"{k} {m}" for k, m in models.items()) if isinstance(
            models, dict) else ""
        origin = (f" from job {cp.metadata.reprocess_of} at stage {cp.metadata.from_stage}"
                  if cp.metadata.reprocess_of else "")
        marks = [m for m, on in (("newest", v == newest), ("this job", cp.job_id == this_job))
                 if on]
        lines.append(f"  v{v}{' (' + ', '.join(marks) + ')' if marks else ''}: job {cp.job_id}"
                     f" {cp.status.value}, processed {cp.processed_documents}, failed "
                     f"{cp.failed_documents}{origin}")
        if made:
            lines.append(f"      pipeline {made.get('pipeline')}, schema {made.get('schema')}"
                         + (f", models: {what}" if what else ""))
    return "\n".join(lines)


def events_lines(stats: dict[str, Any]) -> list[str]:
    """Which backend the documents' events came from, the fallbacks by reason, and one line
    when most documents fell back: a language model that yields little says so."""
    backends: dict[str, int] = stats.get("events_by_backend") or {}
    fallbacks: dict[str, int] = stats.get("events_fallbacks") or {}
    if not backends:
        return []
    lines = ["events from: " + ", ".join(f"{name} {n}" for name, n in backends.items())]
    if fallbacks:
        fell = sum(fallbacks.values())
        reasons = "; ".join(f"{reason}: {n}" for reason, n in fallbacks.items())
        lines.append(f"fell back to rules: {fell} ({reasons})")
        if fell * 2 > sum(backends.values()):
            lines.append(
                f"warning: {fell} of {sum(backends.values())} documents fell back to the rules "
                "backend: the language model gave little (see the reasons above)"
            )
    return lines
