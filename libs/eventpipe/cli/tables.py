"""Tables for a person at a terminal (rich): `status` and `failures list`. Piped or captured
output keeps the plain text of `output.py`, which scripts and tests read. rich is imported
only when a table is drawn: a command in a pipe does not pay for it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.models import JobStatus

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

STATUS_STYLES = {JobStatus.RUNNING.value: "cyan", JobStatus.PAUSED.value: "yellow",
                 JobStatus.STOPPED.value: "magenta", JobStatus.COMPLETED.value: "green",
                 JobStatus.FAILED.value: "red"}


def on_terminal() -> bool:
    return sys.stdout.isatty()


def show(renderables: Iterable[RenderableType]) -> None:
    from rich.console import Console

    console = Console()
    for r in renderables:
        console.print(r)


def _status(value: str) -> Text:
    from rich.text import Text

    return Text(value, style=STATUS_STYLES.get(value, ""))


def status_tables(cp: Checkpoint) -> list[RenderableType]:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    total, processed, failed = cp.total_documents, cp.processed_documents, cp.failed_documents
    pct = 100.0 * processed / total if total else 0.0
    job = Table(title=f"Job {cp.job_id}", box=box.SIMPLE, show_header=False)
    job.add_column(style="bold")
    job.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("Status", _status(cp.status.value)), ("Batch ID", cp.batch_id),
        ("Total Documents", str(total)), ("Processed", f"{processed} ({pct:.1f}%)"),
        ("Failed", str(failed)), ("Remaining", str(max(0, total - processed - failed))),
        ("Created", cp.created_at), ("Updated", cp.updated_at)]
    if cp.metadata.status_reason:
        rows.append(("Reason", cp.metadata.status_reason))
    for label, value in rows:
        job.add_row(label, value)
    out: list[RenderableType] = [job]
    if cp.processed_doc_ids:
        out.append(Text("Recent processed documents (last 10): ", style="bold")
                   + Text(", ".join(cp.processed_doc_ids[-10:])))
    if cp.failed_doc_ids:
        out.append(failures_table([
            {"doc_id": d, "stage": f.stage if (f := cp.failures.get(d)) else "?",
             "class": (f.failure_class if f else None) or "", "attempts": f.attempts if f else "",
             "quarantined": bool(f and f.quarantined), "reason": f.error if f else "?"}
            for d in cp.failed_doc_ids], title=f"Failed documents ({failed})"))
    return out


def failures_table(rows: list[Mapping[str, Any]], title: str) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, box=box.SIMPLE_HEAD)
    for name in ("document", "stage", "class", "attempts", "reason"):
        table.add_column(name, overflow="fold", justify="right" if name == "attempts" else "left")
    for r in rows:
        table.add_row(r["doc_id"], r["stage"],
                      (r["class"] or "") + (" (quarantined)" if r["quarantined"] else ""),
                      str(r["attempts"]),
                      Text(str(r["reason"]).splitlines()[0] if r["reason"] else "?",
                           style="red"))
    return table


def counts_table(by_stage: Mapping[str, int], by_reason: Mapping[str, int]) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Counts", box=box.SIMPLE_HEAD)
    table.add_column("stage / reason", overflow="fold")
    table.add_column("documents", justify="right")
    for stage, n in by_stage.items():
        table.add_row(Text(stage, style="bold"), str(n))
    table.add_section()
    for reason, n in by_reason.items():
        table.add_row(reason, str(n))
    return table
