"""The `eventpipe` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from eventpipe.checkpoint.files import CheckpointNotFound, read_checkpoint
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.kafka.topics import Topics
from eventpipe.logs import setup_logging
from eventpipe.models import JobStatus, Submission, job_id_for
from eventpipe.progress import Progress
from eventpipe.settings import Settings
from eventpipe.stack import Stack, StackError
from eventpipe.storage.jsonl import results_path

log = logging.getLogger("eventpipe.cli")

BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FINAL = {JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.STOPPED.value}


class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit code 2."""


def default_batch_id() -> str:
    return datetime.now(UTC).strftime("batch_%Y%m%d_%H%M%S")


def check_batch_id(batch_id: str) -> str:
    if not BATCH_ID.match(batch_id) or ".." in batch_id:
        raise UsageError(
            f"invalid batch id {batch_id[:80]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return batch_id


def check_input(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"input file {path} does not exist")
    if not path.is_file():
        raise UsageError(f"input {path} is not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"input file {path} is not readable")
    return path.resolve()


def load_checkpoint(settings: Settings, job_id: str) -> dict[str, Any] | None:
    try:
        return read_checkpoint(settings.checkpoint_dir, job_id)
    except CheckpointNotFound:
        return None


def submit(settings: Settings, path: Path, batch_id: str) -> Submission:
    job_id = job_id_for(batch_id)
    previous = load_checkpoint(settings, job_id)
    if previous and previous["status"] == JobStatus.STOPPED.value:
        raise UsageError(f"job {job_id} (batch {batch_id}) is STOPPED and cannot be "
                         "resumed or resubmitted; use another batch id")
    producer = make_producer(settings)
    sub = Submission(batch_id=batch_id, job_id=job_id, path=str(path))
    producer.produce(Topics.from_settings(settings).submissions, key=batch_id.encode(),
                     value=sub.model_dump_json().encode())
    if producer.flush(30):
        raise KafkaSetupError("the submission was not acknowledged by the broker")
    return sub


def wait_for_job(
    stack: Stack, sub: Submission, register_timeout_s: float = 120.0
) -> dict[str, Any]:
    """Show progress until the job ends. Only a checkpoint that this submission has
    registered counts, so an earlier run's final status is not taken for this one's."""
    progress = Progress()
    settings = stack.settings
    registered_by = time.monotonic() + register_timeout_s
    try:
        while True:
            for name in stack.supervise():
                print(f"\nservice {name} died; started it again", file=sys.stderr)
            cp = load_checkpoint(settings, sub.job_id)
            if cp is not None and cp["metadata"].get("submission_id") == sub.submission_id:
                progress.update(cp)
                if cp["status"] in FINAL and cp["metadata"].get("total_known", True):
                    return cp
            elif time.monotonic() > registered_by:
                raise StackError(f"job {sub.job_id} was not registered within "
                                 f"{register_timeout_s} s;"
                                 f" see {stack.log_dir}/ingest.log")
            time.sleep(0.25)
    finally:
        progress.close()


def summary(cp: dict[str, Any], data_dir: Path, elapsed_s: float) -> str:
    lines = [
        f"Job {cp['job_id']} (batch {cp['batch_id']}): {cp['status']} in {elapsed_s:.1f} s",
        f"  total {cp['total_documents']}, processed {cp['processed_documents']}, "
        f"failed {cp['failed_documents']}",
        f"  results:    {results_path(data_dir, cp['batch_id'])}",
        f"  checkpoint: {data_dir / 'checkpoints' / (cp['job_id'] + '.json')}",
    ]
    failures = cp.get("failures", {})
    if failures:
        lines.append("  failed documents:")
        for doc_id, f in list(failures.items())[:20]:
            lines.append(f"    ✗ {doc_id} ({f['stage']}): {f['error']}")
        if len(failures) > 20:
            lines.append(f"    ... and {len(failures) - 20} more (see the checkpoint file)")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    path = check_input(Path(args.input))
    batch_id = check_batch_id(args.batch_id or default_batch_id())
    stack = Stack(settings)
    started = time.monotonic()
    print(f"starting the stack (data in {stack.settings.data_dir}) ...", file=sys.stderr)
    try:
        stack.start()
        print(f"broker {stack.bootstrap}; services ready in "
              f"{time.monotonic() - started:.1f} s; submitting {path} as batch {batch_id}",
              file=sys.stderr)
        cp = wait_for_job(stack, submit(stack.settings, path, batch_id))
    finally:
        stack.stop()
    print(summary(cp, stack.settings.data_dir, time.monotonic() - started))
    return 0 if cp["status"] == JobStatus.COMPLETED.value else 1


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    job = args.job
    job_id = job if re.fullmatch(r"[0-9a-f-]{36}", job) else job_id_for(check_batch_id(job))
    cp = load_checkpoint(settings, job_id)
    if cp is None:
        raise UsageError(f"no checkpoint for {job} in {settings.checkpoint_dir}")
    if args.json:
        print(json.dumps(cp, indent=2, ensure_ascii=False))
        return 0
    total = cp["total_documents"]
    pct = 100.0 * cp["processed_documents"] / total if total else 0.0
    remaining = total - cp["processed_documents"] - cp["failed_documents"]
    print("=" * 70 + "\nCHECKPOINT STATUS\n" + "=" * 70)
    print(f"Job ID: {cp['job_id']}\n")
    for label, value in [
        ("Status", cp["status"]), ("Batch ID", cp["batch_id"]), ("Total Documents", total),
        ("Processed", f"{cp['processed_documents']} ({pct:.1f}%)"),
        ("Failed", cp["failed_documents"]), ("Remaining", remaining),
        ("Created", cp["created_at"]), ("Updated", cp["updated_at"]),
    ]:
        print(f"{label + ':':<21}{value}")
    print("\nRecent Processed Documents (last 10):")
    for doc_id in cp["processed_doc_ids"][-10:]:
        print(f"  ✓ {doc_id}")
    print(f"\nFailed Documents ({cp['failed_documents']}):")
    for doc_id in cp["failed_doc_ids"]:
        reason = cp.get("failures", {}).get(doc_id, {})
        print(f"  ✗ {doc_id} ({reason.get('stage', '?')}: {reason.get('error', '?')})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventpipe", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="process a JSONL file end to end on this machine")
    run.add_argument("input", help="JSONL file, one object with `id` and `text` per line")
    run.add_argument("--batch-id", help="names the batch; the same id continues the same job")
    run.add_argument("--data-dir", help="results and checkpoints (env EVENTPIPE_DATA_DIR)")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="print a job's checkpoint")
    status.add_argument("job", help="job id or batch id")
    status.add_argument("--json", action="store_true", help="print the checkpoint itself")
    status.add_argument("--data-dir", help="results and checkpoints (env EVENTPIPE_DATA_DIR)")
    status.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"eventpipe: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    setup_logging("WARNING")
    try:
        sys.exit(args.func(args, settings))
    except UsageError as exc:
        print(f"eventpipe: {exc}", file=sys.stderr)
        sys.exit(2)
    except (StackError, KafkaSetupError, KafkaException) as exc:
        print(f"eventpipe: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\neventpipe: interrupted; services stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
