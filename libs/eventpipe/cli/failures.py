"""`eventpipe failures list | show | replay`: working with a job's failed documents.

Which documents are failed now is the checkpoint's word (processed wins over failed); what
is needed to redo one (its payload: the failing stage's input message) comes from the failure
records the sink keeps in the first enabled backend (JSONL, else PostgreSQL, else
Elasticsearch). A replay re-sends those payloads into the stage where they failed, without
the input file."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.cli.tables import counts_table, failures_table, on_terminal, show
from eventpipe.errors import Refused, UsageError
from eventpipe.jobs import require_checkpoint, resolve_job
from eventpipe.kafka.clients import make_producer, produce
from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.kafka.topics import Topics
from eventpipe.models import DocRecord, FailedDocument, JobStatus, Stage, StatusRecord, utc_now
from eventpipe.settings import Settings
from eventpipe.storage.factory import backend_names, open_backend
from eventpipe.storage.jsonl import load_failure_records


@dataclass
class FailedRow:
    doc_id: str
    stage: str
    failure_class: str
    attempts: int
    reason: str
    quarantined: bool
    record: FailedDocument | None

    def unreplayable(self, include_quarantined: bool = False) -> str | None:
        """Why this document cannot be replayed, or None when it can."""
        if self.record is None:
            return "no failure record with a payload is stored for it"
        if self.record.payload is None:
            return f"no payload to send ({self.reason})"
        if self.stage not in REPLAY_TARGETS:
            return f"failed at stage {self.stage}, which has no input to replay into"
        if self.quarantined and not include_quarantined:
            return "quarantined (failed again after replays); --include-quarantined replays it"
        return None

    def summary(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "stage": self.stage, "class": self.failure_class,
                "attempts": self.attempts, "reason": self.reason,
                "quarantined": self.quarantined,
                "first_failed_at": self.record.first_failed_at if self.record else None,
                "last_failed_at": self.record.at if self.record else None,
                "replays": self.record.replays if self.record else 0,
                "unreplayable": self.unreplayable()}


# The topic each stage reads: a failed document goes back there.
REPLAY_TARGETS = {Stage.NER.value: "docs", Stage.DP.value: "ner", Stage.LLM.value: "dp",
                  Stage.SINK.value: "events"}


def stored_failures(settings: Settings, batch_id: str, job_id: str
                    ) -> dict[str, FailedDocument]:
    for name in backend_names(settings):
        if name == "jsonl":
            return load_failure_records(settings.data_dir, batch_id, job_id)
        backend = open_backend(settings, name)
        try:
            return backend.load_failures(batch_id, job_id)
        finally:
            backend.close()
    return {}


def _checkpoint(settings: Settings, job_id: str, job: str | None) -> dict[str, Any]:
    """The checkpoint, validated by the typed model, as the file's keys (which the rows and
    the JSON output of these commands are made of)."""
    return require_checkpoint(settings, job_id, job).to_file()


def failed_rows(settings: Settings, cp: dict[str, Any], with_replaying: bool = False
                ) -> list[FailedRow]:
    """The failed documents; `with_replaying` adds those a replay re-sent that are not done
    yet (a broker restart may have lost them: sending them again is harmless)."""
    records = stored_failures(settings, cp["batch_id"], cp["job_id"])
    entries = cp.get("failures", {})
    rows = []
    replaying = cp["metadata"].get("replaying_doc_ids", []) if with_replaying else []
    for doc_id in [*cp["failed_doc_ids"], *replaying]:
        entry = entries.get(doc_id, {})
        record = records.get(doc_id)
        rows.append(FailedRow(
            doc_id=doc_id,
            stage=str(entry.get("stage") or (record.stage.value if record else "?")),
            failure_class=str(entry.get("class")
                              or (record.failure_class.value if record else "permanent")),
            attempts=int(entry.get("attempts") or (record.attempts if record else 1)),
            reason=str(entry.get("error") or (record.error if record else "?")),
            quarantined=bool(entry.get("quarantined") or (record and record.quarantined)),
            record=record,
        ))
    return rows


def select(rows: list[FailedRow], stage: str | None, reason: str | None,
           doc_ids: list[str] | None) -> list[FailedRow]:
    wanted = set(doc_ids or [])
    return [r for r in rows
            if (stage is None or r.stage == stage)
            and (reason is None or reason.lower() in r.reason.lower())
            and (not wanted or r.doc_id in wanted)]


def counts(rows: list[FailedRow]) -> dict[str, dict[str, int]]:
    return {"by_stage": dict(Counter(r.stage for r in rows).most_common()),
            "by_reason": dict(Counter(_short(r.reason) for r in rows).most_common())}


def _short(reason: str) -> str:
    """A reason without the per-document detail after its first line, for counting."""
    return reason.splitlines()[0][:160] if reason else "?"


def cmd_list(settings: Settings, job: str, stage: str | None, reason: str | None,
             as_json: bool) -> int:
    job_id = resolve_job(settings, job)
    cp = _checkpoint(settings, job_id, job)
    rows = select(failed_rows(settings, cp), stage, reason, None)
    if as_json:
        print(json.dumps({"job_id": job_id, "batch_id": cp["batch_id"],
                          "status": cp["status"], "failed": len(rows),
                          "failures": [r.summary() for r in rows], **counts(rows)},
                         indent=2, ensure_ascii=False))
        return 0
    title = (f"job {job_id} (batch {cp['batch_id']}, {cp['status']}): {len(rows)} failed "
             "document(s)" + (" matching" if stage or reason else ""))
    replaying = cp["metadata"].get("replaying_doc_ids", [])
    if on_terminal():
        c = counts(rows)
        show([failures_table([r.summary() for r in rows], title),
              *([counts_table(c["by_stage"], c["by_reason"])] if rows else []),
              *([f"({len(replaying)} more being replayed, not done yet)"] if replaying
                else [])])
        return 0
    print(title)
    if replaying:
        print(f"  ({len(replaying)} more being replayed, not done yet)")
    for r in rows:
        print(f"  {r.doc_id}\t{r.stage}\t{r.failure_class}\tattempts {r.attempts}"
              f"{' QUARANTINED' if r.quarantined else ''}\t{r.reason}")
    if rows:
        c = counts(rows)
        print("by stage:  " + ", ".join(f"{k} {v}" for k, v in c["by_stage"].items()))
        print("by reason:")
        for text, n in c["by_reason"].items():
            print(f"  {n:>6}  {text}")
    return 0


def cmd_show(settings: Settings, job: str, doc_id: str) -> int:
    job_id = resolve_job(settings, job)
    cp = _checkpoint(settings, job_id, job)
    if doc_id not in cp["failures"]:
        state = "processed" if doc_id in set(cp["processed_doc_ids"]) else "not failed"
        raise UsageError(f"document {doc_id!r} of job {job_id} is {state}")
    (row,) = select(failed_rows(settings, cp), None, None, [doc_id])
    shown: dict[str, Any] = (row.record.model_dump(mode="json") if row.record is not None
                             else {"doc_id": doc_id, "job_id": job_id,
                                   "batch_id": cp["batch_id"]})
    shown |= {"stage": row.stage, "error": row.reason, "failure_class": row.failure_class,
              "attempts": row.attempts, "quarantined": row.quarantined,
              "unreplayable": row.unreplayable()}
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def cmd_replay(settings: Settings, job: str, stage: str | None, reason: str | None,
               doc_ids: list[str] | None, include_quarantined: bool, wait: bool,
               timeout_s: float) -> int:
    job_id = resolve_job(settings, job)
    cp = _checkpoint(settings, job_id, job)
    if cp["status"] in (JobStatus.PAUSED.value, JobStatus.STOPPED.value):
        raise Refused(f"job {job_id} is {cp['status']}: "
                         + ("resume it first" if cp["status"] == "PAUSED"
                            else "a stopped job is not replayed"))
    if cp["metadata"].get("phase") == "batch-level work":
        # Its COMPLETED would land after the replay's RUNNING and close the job early.
        raise Refused(f"job {job_id} is doing its batch-level work: replay once it is "
                         "COMPLETED")
    rows = select(failed_rows(settings, cp, with_replaying=True), stage, reason, doc_ids)
    missing = sorted(set(doc_ids or []) - {r.doc_id for r in rows})
    for doc_id in missing:
        print(f"  not replayed: {doc_id}: not a failed document of this job")
    todo = [r for r in rows if r.unreplayable(include_quarantined) is None]
    for r in rows:
        why = r.unreplayable(include_quarantined)
        if why is not None:
            print(f"  not replayed: {r.doc_id} ({r.stage}): {why}")
    if not todo:
        print(f"job {job_id}: nothing to replay ({len(rows)} matching failed document(s))")
        return 1 if rows or missing else 0
    replay_id = send_replay(settings, cp, todo)
    print(f"job {job_id}: replaying {len(todo)} document(s) "
          + ", ".join(f"{k} {v}" for k, v in Counter(r.stage for r in todo).items()))
    cp = wait_for_replay(settings, job_id, replay_id, timeout_s)
    print(f"job {job_id}: {cp['status']}")
    if not wait:
        return 0
    while not JobStatus(cp["status"]).is_final:
        time.sleep(0.25)
        cp = _checkpoint(settings, job_id, job)
    print(f"job {job_id}: {cp['status']}: processed {cp['processed_documents']}, "
          f"failed {cp['failed_documents']} of {cp['total_documents']}")
    return 0 if cp["status"] == JobStatus.COMPLETED.value else 1


def send_replay(settings: Settings, cp: dict[str, Any], rows: list[FailedRow]) -> str:
    """Mark the documents pending and the job RUNNING (acknowledged first, so the batch-level
    work waits for them), then send each stored payload to its stage's input topic."""
    job_id = cp["job_id"]
    producer = make_producer(settings)
    writer = CheckpointWriter(settings, producer)
    replay_id = uuid.uuid4().hex
    now = utc_now()
    for r in rows:
        writer.send(DocRecord(job_id=job_id, doc_id=r.doc_id, state="pending", at=now))
    writer.send(StatusRecord(job_id=job_id, status=JobStatus.RUNNING, at=now,
                             replay_id=replay_id))
    writer.flush()
    topics = Topics.from_settings(settings)
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    # Stamped now: newer than any pause or resume before this replay (control/state.py), so
    # no stage drops it as a document sent before one.
    epoch_ms = int(time.time() * 1000)
    for r in rows:
        assert r.record is not None and r.record.payload is not None
        payload = r.record.payload.model_copy(update={
            "replays": r.record.replays + 1, "retry": None,
            "epoch_ms": max(r.record.payload.epoch_ms, epoch_ms)})
        topic = getattr(topics, REPLAY_TARGETS[r.stage])
        produce(producer, topic, f"{job_id}/{r.doc_id}".encode(),
                payload.model_dump_json().encode(), on_delivery)
    if producer.flush(30) or errors:
        raise KafkaSetupError(f"replayed documents not acknowledged by the broker: "
                              f"{errors[:1] or 'timed out'}; run the replay again")
    return replay_id


def wait_for_replay(settings: Settings, job_id: str, replay_id: str, timeout_s: float
                    ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        cp = _checkpoint(settings, job_id, None)
        if cp["metadata"].get("replay_id") == replay_id:
            return cp
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replay was sent, but job {job_id}'s checkpoint did not "
                               f"show it within {timeout_s:.0f} s; is the checkpoint service "
                               "running? (`eventpipe ps`)")
        time.sleep(0.1)
