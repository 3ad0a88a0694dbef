"""`eventpipe reprocess JOB --from-stage llm|dp`: the later stages and the batch-level work run
again, with the current settings, from the saved output of the earlier stages, into a new
result version kept beside the earlier ones.

A reprocess is a job of its own (`reprocess_job_id(batch, N)`), so pause, resume, stop,
status, failures and the linker treat it as any job, and every backend keeps both versions:
PostgreSQL and Elasticsearch key results by job, JSONL writes version N to its own files
(`extracted_events_{batch}.vN.jsonl`). Its documents are the processed documents of the
source job's results, sent into the topic the first re-run stage reads; no input file and
no NER or parse (for `--from-stage llm`) is needed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.constants import JOB_ID
from eventpipe.errors import Refused, UsageError
from eventpipe.jobs import last_job_path, load_checkpoint, require_checkpoint, resolve_job
from eventpipe.kafka.clients import make_producer, produce
from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.kafka.topics import Topics
from eventpipe.models import (
    DocumentMessage,
    JobRecord,
    JobStatus,
    Stage,
    job_id_for,
    reprocess_job_id,
    utc_now,
)
from eventpipe.settings import Settings
from eventpipe.storage.base import ResultRecord
from eventpipe.storage.jsonl import JsonlStore, result_versions, results_path

# The stages a reprocess can start at, and the topic each reads.
FROM_STAGES = {Stage.LLM.value: "dp", Stage.DP.value: "ner"}
# What each start keeps of a saved result: the output of the stages before it.
_KEPT = {Stage.LLM.value: ("ner", "dp"), Stage.DP.value: ("ner",)}

Send = Callable[[str, bytes, bytes], None]


@dataclass(frozen=True)
class Reprocess:
    job_id: str
    batch_id: str
    result_version: int
    source_job_id: str
    from_stage: str
    documents: int


def version_of(cp: Checkpoint) -> int:
    return cp.metadata.result_version or 1


def batch_versions(settings: Settings, batch_id: str) -> dict[int, Checkpoint]:
    """The job of every result version of a batch, by version (ids are derived: O(versions)).
    A version whose checkpoint `cleanup` deleted leaves a gap; its results file still counts
    (see `next_version`), so the versions after it are still found."""
    found: dict[int, Checkpoint] = {}
    first = load_checkpoint(settings, job_id_for(batch_id))
    if first is not None:
        found[1] = first
    top = max(result_versions(settings.data_dir, batch_id), default=1)
    version = 2
    while True:
        cp = load_checkpoint(settings, reprocess_job_id(batch_id, version))
        if cp is not None:
            found[version] = cp
        elif version > top:
            return found
        version += 1


def next_version(settings: Settings, batch_id: str, versions: dict[int, Checkpoint]) -> int:
    """One more than any version with a checkpoint or a results file: never a version whose
    saved results would make the new ones look already written."""
    return max([*versions, *result_versions(settings.data_dir, batch_id), 1]) + 1


def saved_results(settings: Settings, source: Checkpoint) -> list[ResultRecord]:
    """The source job's processed documents as the sink saved them (JSONL)."""
    if not settings.jsonl_enabled:
        raise UsageError("reprocess reads the saved output of the earlier stages from the "
                         "JSONL results; they are off (EVENTPIPE_JSONL_ENABLED=false)")
    store = JsonlStore(settings.data_dir, fsync=False)
    try:
        records = store.load_documents(source.batch_id, source.job_id, version_of(source))
    finally:
        store.close()
    processed = set(source.processed_doc_ids)
    return [r for r in records if str(r["id"]) in processed]


def to_message(record: ResultRecord, job_id: str, result_version: int, from_stage: str,
               epoch_ms: int) -> DocumentMessage:
    """A saved result as the input message of `from_stage`: only the earlier stages' output."""
    if from_stage == Stage.LLM.value and "predicates" not in record:
        raise UsageError(f"document {record['id']!r} was saved without the parse the events "
                         "stage reads (an older eventpipe): reprocess --from-stage dp")
    kept = _KEPT[from_stage]
    models = (record.get("versions") or {}).get("models") or {}
    doc: dict[str, Any] = {
        "job_id": job_id, "batch_id": record["batch_id"], "doc_id": str(record["id"]),
        "text": record["text"], "meta": record.get("meta") or {},
        "entities": record.get("entities") or [],
        # A chained worker times NER and DP together ("ner+dp"): kept when both stages are.
        "timings_ms": {k: v for k, v in (record.get("timings_ms") or {}).items()
                       if all(stage in kept for stage in k.split("+"))},
        "models": {k: v for k, v in models.items() if k in kept},
        "result_version": result_version, "epoch_ms": epoch_ms,
    }
    if from_stage == Stage.LLM.value:
        doc |= {"sentences": record.get("sentences") or [],
                "triplets": record.get("triplets") or [],
                "predicates": record.get("predicates") or []}
    return DocumentMessage.model_validate(doc)


def send_documents(settings: Settings, send: Send, job_id: str, result_version: int,
                   from_stage: str, records: Iterable[ResultRecord], skip: set[str],
                   epoch_ms: int) -> int:
    """Send the saved results not in `skip` to the first re-run stage; returns how many."""
    topic = getattr(Topics.from_settings(settings), FROM_STAGES[from_stage])
    sent = 0
    for record in records:
        if str(record["id"]) in skip:
            continue
        msg = to_message(record, job_id, result_version, from_stage, epoch_ms)
        send(topic, f"{job_id}/{msg.doc_id}".encode(), msg.model_dump_json().encode())
        sent += 1
    return sent


def resend_remaining(settings: Settings, send: Send, job_id: str, source_job_id: str,
                     result_version: int, from_stage: str, done: set[str],
                     epoch_ms: int) -> int:
    """Resume of a reprocess: send again what it has not processed or failed yet."""
    source = load_checkpoint(settings, source_job_id)
    if source is None:
        raise UsageError(f"the source job {source_job_id} of reprocess {job_id} has no "
                         "checkpoint here")
    return send_documents(settings, send, job_id, result_version, from_stage,
                          saved_results(settings, source), done, epoch_ms)


def source_of(settings: Settings, job: str, versions: dict[int, Checkpoint]) -> Checkpoint:
    """JOB as a job id names the source itself; as a batch id, its newest completed version."""
    if JOB_ID.fullmatch(job):
        return require_checkpoint(settings, job, job)
    completed = [v for v, cp in versions.items() if cp.status is JobStatus.COMPLETED]
    if not completed:
        raise Refused(f"batch {job} has no COMPLETED result version to reprocess")
    return versions[max(completed)]


def start(settings: Settings, job: str, from_stage: str, timeout_s: float = 30.0
          ) -> Reprocess:
    """Register the reprocess job and send its documents; returns once its checkpoint shows
    it registered."""
    if from_stage not in FROM_STAGES:
        raise UsageError(f"--from-stage is one of {', '.join(FROM_STAGES)}, not {from_stage!r}")
    first = require_checkpoint(settings, resolve_job(settings, job), job)
    versions = batch_versions(settings, first.batch_id)
    source = source_of(settings, job, versions)
    if source.status is not JobStatus.COMPLETED:
        raise Refused(f"job {source.job_id} is {source.status.value}: only a COMPLETED job's "
                      "output is reprocessed")
    newest = max(versions)
    if not versions[newest].is_final:
        raise Refused(f"result version {newest} of batch {source.batch_id} is still being "
                      f"made (job {versions[newest].job_id}, {versions[newest].status.value})"
                      ": let it finish or stop it first")
    records = saved_results(settings, source)
    if not records:
        raise Refused(f"job {source.job_id} has no saved processed documents to reprocess")
    version = next_version(settings, source.batch_id, versions)
    job_id = reprocess_job_id(source.batch_id, version)
    epoch_ms = int(time.time() * 1000)
    for record in records:  # every one valid before anything is registered
        to_message(record, job_id, version, from_stage, epoch_ms)
    producer = make_producer(settings)
    writer = CheckpointWriter(settings, producer)
    # Registered (acknowledged) first: the linker then knows how many documents to wait for.
    writer.send(JobRecord(
        job_id=job_id, batch_id=source.batch_id, created_at=utc_now(),
        total_documents=len(records), result_version=version, reprocess_of=source.job_id,
        from_stage=Stage(from_stage),
        input_path=str(results_path(settings.data_dir, source.batch_id, version_of(source)))))
    writer.flush()
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    send_documents(settings, lambda t, k, v: produce(producer, t, k, v, on_delivery), job_id,
                   version, from_stage, records, set(), epoch_ms)
    if producer.flush(30) or errors:
        raise KafkaSetupError(f"reprocessed documents not acknowledged by the broker: "
                              f"{errors[:1] or 'timed out'}; `eventpipe resume {job_id}` "
                              "sends what is left")
    last = last_job_path(settings)
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_text(job_id + "\n")
    deadline = time.monotonic() + timeout_s
    while load_checkpoint(settings, job_id) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reprocess {job_id} was sent, but its checkpoint did not "
                               f"appear within {timeout_s:.0f} s; is the checkpoint service "
                               "running? (`eventpipe ps`)")
        time.sleep(0.1)
    return Reprocess(job_id, source.batch_id, version, source.job_id, from_stage,
                     len(records))
