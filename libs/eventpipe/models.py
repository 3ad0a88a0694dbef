"""Message models: what travels on every topic. Validation here is the boundary check for
messages written by any producer, ours or foreign."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eventpipe.constants import JOB_ID, TIME_FORMAT

# Job ids are derived from batch ids, so resubmitting a batch id continues the same job
# without any lookup, from any process.
_JOB_NAMESPACE = uuid.UUID("6f1c2b9e-4d1a-5e7f-9a3b-2c8d0e4f6a10")
MAX_ID_LENGTH = 512
MAX_REASON_LENGTH = 2000
# Full matches only (`fullmatch`), as every id pattern in eventpipe.constants.
JOB_ID_PATTERN = JOB_ID
# Control characters (C0, DEL, C1) and lone surrogates: the latter cannot be encoded as UTF-8,
# so an id holding one would crash whatever encodes it (a Kafka key, a file name, a log line).
_BAD_ID_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# The version of the message and result formats this code writes and understands. A reader
# meeting a newer one fails that document with a clear reason instead of misreading it.
SCHEMA_VERSION = 1


def job_id_for(batch_id: str) -> str:
    return str(uuid.uuid5(_JOB_NAMESPACE, batch_id))


def reprocess_job_id(batch_id: str, result_version: int) -> str:
    """The job that makes result version N (> 1) of a batch: derived, so any process finds
    it without a lookup. A NUL cannot occur in a batch id, so no batch's own job collides."""
    return str(uuid.uuid5(_JOB_NAMESPACE, f"reprocess\0{batch_id}\0{result_version}"))


def utc_now() -> str:
    """ISO-8601 UTC with a trailing Z, second precision, as the checkpoint format shows."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def check_id(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    bad = _BAD_ID_CHAR.search(value)
    if bad is not None:
        kind = "an unpaired surrogate" if 0xD800 <= ord(bad.group()) <= 0xDFFF else (
            "a control character")
        raise ValueError(f"{what} contains {kind} at position {bad.start()}")
    return value


def check_job_id(value: str) -> str:
    if not JOB_ID_PATTERN.fullmatch(value):
        raise ValueError(f"job_id {value[:80]!r} is not a job id (a lowercase UUID)")
    return value


def safe_id(value: object) -> str:
    """An id for a failure record from whatever a broken message held: cut to the id limit,
    with the characters no id may hold replaced, so the failure itself can always be sent."""
    text = _BAD_ID_CHAR.sub("\ufffd", str(value)[:MAX_ID_LENGTH])
    return text or "unknown"


class JobStatus(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        """The one definition of "finished": the job will not change on its own any more
        (COMPLETED, FAILED, STOPPED)."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


class Stage(StrEnum):
    INGEST = "ingest"
    NER = "ner"
    DP = "dp"
    LLM = "llm"
    SINK = "sink"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Entity(_Model):
    text: str
    label: str
    start_char: int = Field(ge=0)
    end_char: int = Field(ge=0)


class PrepModifier(_Model):
    prep: str
    object: str


class Triplet(_Model):
    subject: str
    action: str
    object: str | None = None
    negated: bool = False
    passive: bool = False
    agent: str | None = None
    prep_modifiers: list[PrepModifier] = Field(default_factory=list)
    sentence: int = Field(0, ge=0)
    start_char: int = Field(0, ge=0, description="Offset of the action (verb) token.")
    end_char: int = Field(0, ge=0)


class Predicate(_Model):
    """A word that may name an event (a verb, an event noun), found by the DP stage."""

    lemma: str
    kind: Literal["verb", "noun", "adjective"]
    start_char: int = Field(ge=0)
    end_char: int = Field(ge=0)
    sentence: int = Field(0, ge=0)
    negated: bool = False


class Participant(_Model):
    text: str
    role: str
    label: str | None = None
    key: str | None = Field(None, description="Canonical key of the named entity, if any.")
    start_char: int | None = Field(None, ge=0, description="The entity's span in the text.")
    end_char: int | None = Field(None, ge=0)


class Event(_Model):
    trigger: str
    type: str
    participants: list[Participant] = Field(default_factory=list)
    location: str | None = None
    time: str | None = None
    sentence: int = Field(0, ge=0)
    source: str = "rules"
    lemma: str | None = Field(None, description="The trigger's lemma.")
    reporting: bool = Field(False, description="A reporting verb (say, announce): weighs "
                            "little in linking.")
    start_char: int | None = Field(None, ge=0, description="The trigger's span in the text.")
    end_char: int | None = Field(None, ge=0)
    sentence_start: int | None = Field(None, ge=0, description="The sentence's span.")
    sentence_end: int | None = Field(None, ge=0)


class RetryState(_Model):
    """A document's transient failures at one stage, carried on the document while it waits
    on that stage's retry topic (see runtime/retry_topic.py)."""

    stage: Stage
    attempts: int = Field(ge=1, description="Failed attempts so far at this stage.")
    first_failed_at: str
    first_failed_ms: int = Field(ge=0)
    not_before_ms: int = Field(ge=0, description="Not to be tried again before this time.")
    error: str


class DocumentMessage(_Model):
    """A document on the work topics; each stage fills in its part and passes it on."""

    schema_version: int = Field(SCHEMA_VERSION, ge=1)
    job_id: str
    batch_id: str
    doc_id: str
    text: str
    meta: dict[str, object] = Field(default_factory=dict)
    entities: list[Entity] = Field(default_factory=list)
    sentences: list[tuple[int, int]] = Field(default_factory=list)
    triplets: list[Triplet] = Field(default_factory=list)
    predicates: list[Predicate] = Field(
        default_factory=list, description="Words that may name an event (DP stage)."
    )
    events: list[Event] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    events_backend: str | None = Field(None, description="The backend that made `events`.")
    events_fallback: str | None = Field(
        None, description="Why the events came from the `rules` fallback, when they did."
    )
    epoch_ms: int = Field(
        0, ge=0, description="Newest resume of the job its sender knew of; see control/state.py."
    )
    retry: RetryState | None = Field(None, description="Set while transient failures retry.")
    replays: int = Field(0, ge=0, description="Times `eventpipe failures replay` re-sent it.")
    result_version: int = Field(1, ge=1, description="The result version it is made for: 1, "
                                "and one more for each `eventpipe reprocess` of its batch.")
    models: dict[str, str] = Field(default_factory=dict, description="The model each stage "
                                   "made its output with, by stage.")

    @field_validator("job_id", "batch_id", "doc_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        # Job ids are not held to their UUID form here (stages keep no state per job); the
        # sink records only documents of real job ids, and checkpoint records check it.
        return check_id(value, "id")


class FailureClass(StrEnum):
    TRANSIENT = "transient"  # the backend, not the document: worth trying again later
    PERMANENT = "permanent"  # the document itself: the same input fails the same way


class FailedDocument(_Model):
    """A failure record: everything needed to understand it and to redo it. `payload` is the
    failing stage's input message (None when there is none, e.g. a malformed input line). Ids
    are made safe (`safe_id`) rather than refused: a failure must always be sendable, whatever
    the message that failed held."""

    schema_version: int = Field(SCHEMA_VERSION, ge=1)
    job_id: str
    batch_id: str
    doc_id: str
    stage: Stage
    error: str
    at: str = Field(default_factory=utc_now, description="When it failed (the last time).")
    failure_class: FailureClass = FailureClass.PERMANENT
    attempts: int = Field(1, ge=1, description="Attempts at the failing stage.")
    first_failed_at: str | None = None
    replays: int = Field(0, ge=0, description="Replays it had failed after.")
    quarantined: bool = Field(False, description="Failed after too many replays: not replayed.")
    payload: DocumentMessage | None = None

    @field_validator("job_id", "batch_id", "doc_id", mode="before")
    @classmethod
    def _safe(cls, value: object) -> str:
        return safe_id(value)

    @field_validator("error", mode="before")
    @classmethod
    def _reason(cls, value: object) -> str:
        return _SURROGATE.sub("\ufffd", str(value)[:MAX_REASON_LENGTH])


class Submission(_Model):
    """A request to ingest a JSONL file, sent by the CLI to the submissions topic."""

    kind: Literal["file"] = "file"
    batch_id: str
    job_id: str
    path: str
    retry_failed: bool = False
    submission_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    origin: Literal["user", "resume"] = "user"

    @field_validator("batch_id")
    @classmethod
    def _batch(cls, value: str) -> str:
        return check_id(value, "batch_id")

    @field_validator("job_id")
    @classmethod
    def _job(cls, value: str) -> str:
        return check_job_id(value)


class StreamDocument(BaseModel):
    """One document of a batch sent on the submissions topic by any Kafka producer (key: the
    batch id). Fields besides these are kept as the document's meta."""

    model_config = ConfigDict(extra="allow")
    batch_id: str
    id: str | int
    text: str


class StreamEnd(_Model):
    """Closes a batch sent on the submissions topic: `count` documents were sent."""

    model_config = ConfigDict(extra="ignore")
    batch_id: str
    end: Literal[True]
    count: int = Field(ge=0)


class ControlCommand(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


class ControlMessage(_Model):
    model_config = ConfigDict(extra="ignore")
    command: ControlCommand
    job_id: str
    at: str = Field(default_factory=utc_now)

    @field_validator("job_id")
    @classmethod
    def _job(cls, value: str) -> str:
        # Readers keep one entry per job id: only real job ids, so their memory is bounded.
        return check_job_id(value)


# --- checkpoint topic records -------------------------------------------------------------


class JobRecord(_Model):
    """Registration and totals of a job, written by ingest (key `job/<job_id>`)."""

    type: Literal["job"] = "job"
    job_id: str
    batch_id: str
    created_at: str
    total_documents: int | None = None
    input_path: str | None = None
    submission_id: str | None = Field(
        None, description="The submission that wrote this record; the CLI waits for it."
    )
    result_version: int | None = Field(
        None, ge=2, description="Set for a reprocess: the result version it makes.")
    reprocess_of: str | None = Field(
        None, description="Set for a reprocess: the job whose saved output it starts from.")
    from_stage: Stage | None = Field(
        None, description="Set for a reprocess: the first stage it runs again.")

    @field_validator("job_id")
    @classmethod
    def _job(cls, value: str) -> str:
        return check_job_id(value)


class DocRecord(_Model):
    """One document's outcome, written by the sink (key `doc/<job_id>/<doc_id>`). Keyed per
    document so recording costs O(1) and a redelivery overwrites itself."""

    type: Literal["doc"] = "doc"
    job_id: str
    doc_id: str
    state: Literal["processed", "failed", "pending"] = Field(
        description="`pending`: re-sent by a replay, neither processed nor failed for now."
    )
    stage: Stage | None = None
    error: str | None = None
    failure_class: FailureClass | None = None
    attempts: int | None = None
    quarantined: bool | None = None
    at: str

    @field_validator("job_id")
    @classmethod
    def _job(cls, value: str) -> str:
        return check_job_id(value)

    @field_validator("doc_id")
    @classmethod
    def _doc(cls, value: str) -> str:
        return check_id(value, "doc_id")


class StatusRecord(_Model):
    """A terminal status decided by the materializer (key `status/<job_id>`)."""

    type: Literal["status"] = "status"
    job_id: str
    status: JobStatus
    at: str
    reason: str | None = None
    replay_id: str | None = Field(
        None, description="Set by a replay re-opening the job (RUNNING); the CLI waits for it."
    )

    @field_validator("job_id")
    @classmethod
    def _job(cls, value: str) -> str:
        return check_job_id(value)


CheckpointRecord = JobRecord | DocRecord | StatusRecord
