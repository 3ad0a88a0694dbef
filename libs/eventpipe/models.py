"""Message models: what travels on every topic. Validation here is the boundary check for
messages written by any producer, ours or foreign."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Job ids are derived from batch ids, so resubmitting a batch id continues the same job
# without any lookup, from any process.
_JOB_NAMESPACE = uuid.UUID("6f1c2b9e-4d1a-5e7f-9a3b-2c8d0e4f6a10")
MAX_ID_LENGTH = 512


def job_id_for(batch_id: str) -> str:
    return str(uuid.uuid5(_JOB_NAMESPACE, batch_id))


def utc_now() -> str:
    """ISO-8601 UTC with a trailing Z, second precision, as the checkpoint format shows."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_id(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} contains a control character")
    return value


class JobStatus(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


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


class Participant(_Model):
    text: str
    role: str
    label: str | None = None


class Event(_Model):
    trigger: str
    type: str
    participants: list[Participant] = Field(default_factory=list)
    location: str | None = None
    time: str | None = None
    sentence: int = Field(0, ge=0)
    source: str = "rules"


class DocumentMessage(_Model):
    """A document on the work topics; each stage fills in its part and passes it on."""

    job_id: str
    batch_id: str
    doc_id: str
    text: str
    meta: dict[str, object] = Field(default_factory=dict)
    entities: list[Entity] = Field(default_factory=list)
    sentences: list[tuple[int, int]] = Field(default_factory=list)
    triplets: list[Triplet] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    events_backend: str | None = Field(None, description="The backend that made `events`.")
    events_fallback: str | None = Field(
        None, description="Why the events came from the `rules` fallback, when they did."
    )
    epoch_ms: int = Field(
        0, ge=0, description="Newest resume of the job its sender knew of; see control/state.py."
    )

    @field_validator("job_id", "batch_id", "doc_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        return check_id(value, "id")


class FailedDocument(_Model):
    job_id: str
    batch_id: str
    doc_id: str
    stage: Stage
    error: str
    at: str = Field(default_factory=utc_now)


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


class DocRecord(_Model):
    """One document's outcome, written by the sink (key `doc/<job_id>/<doc_id>`). Keyed per
    document so recording costs O(1) and a redelivery overwrites itself."""

    type: Literal["doc"] = "doc"
    job_id: str
    doc_id: str
    state: Literal["processed", "failed"]
    stage: Stage | None = None
    error: str | None = None
    at: str


class StatusRecord(_Model):
    """A terminal status decided by the materializer (key `status/<job_id>`)."""

    type: Literal["status"] = "status"
    job_id: str
    status: JobStatus
    at: str
    reason: str | None = None


CheckpointRecord = JobRecord | DocRecord | StatusRecord
