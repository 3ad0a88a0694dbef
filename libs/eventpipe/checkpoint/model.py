"""The checkpoint file (`checkpoints/{job_id}.json`) as a typed model: the contract users
read. Every field of the earlier system's format, field for field, plus what eventpipe adds
(`failures`, and in `metadata` the input's location, whether the total is known yet, the
submission that registered the job, why it ended). More keys may be added, never fewer:
unknown keys are kept when a file is read and written back.

`schemas/checkpoint.schema.json` is generated from this model (`python schemas/generate.py`;
a test fails when it is stale)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from eventpipe.constants import JOB_ID
from eventpipe.models import JobStatus

# Second precision, UTC, trailing Z (eventpipe.constants.TIME_FORMAT). The pattern is the
# file's promise, stated in the schema; reading stays lenient so an odd file still loads.
UtcTime = Annotated[str, WithJsonSchema({"type": "string",
                                         "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"})]
Count = Annotated[int, Field(ge=0)]
DocIds = Annotated[list[str], Field(json_schema_extra={"uniqueItems": True})]


class _Open(BaseModel):
    # Keys this version does not know are kept, not dropped: never fewer keys. A field with a
    # default is still always written, so the schema of the file requires it; reading is
    # lenient (an earlier system's file has no `failures`).
    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)


class CheckpointMetadata(_Open):
    started_at: UtcTime
    progressive_save_enabled: bool = True
    input_path: str | None = Field(None, description="The input file, when the batch came "
                                   "as one: resume re-sends the remaining documents from it.")
    total_known: bool = Field(True, description="False while a batch streamed on the "
                              "submissions topic has not been closed with its count.")
    submission_id: str | None = Field(None, description="The submission that last "
                                      "registered the job.")
    replay_id: str | None = Field(None, exclude_if=lambda v: v is None,
                                  description="The replay of failed documents under way.")
    replaying_doc_ids: list[str] | None = Field(
        None, exclude_if=lambda v: v is None,
        description="Documents a replay still owes; only while there are any.")
    result_version: int | None = Field(
        None, exclude_if=lambda v: v is None,
        description="A reprocess: the result version it makes (the first processing is 1); "
        "only then.")
    reprocess_of: str | None = Field(None, exclude_if=lambda v: v is None,
                                     description="A reprocess: the job whose saved output it "
                                     "starts from; only then.")
    from_stage: str | None = Field(None, exclude_if=lambda v: v is None,
                                   description="A reprocess: the first stage it runs again "
                                   "(llm or dp); only then.")
    status_reason: str | None = Field(None, exclude_if=lambda v: v is None,
                                      description="Why the job FAILED; only when set.")
    phase: str | None = Field(None, exclude_if=lambda v: v is None,
                              description='"batch-level work" while every document is done '
                              "and links and storylines are being made; only then.")
    stuck: dict[str, str] | None = Field(
        None, exclude_if=lambda v: v is None,
        description="A RUNNING job without progress for EVENTPIPE_STUCK_AFTER_S: `since` "
        "(its last record) and `waiting_for` (in words); only then.")


class FailureInfo(_Open):
    # `class` is a keyword in Python: the field has another name, the file keeps the key.
    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True,
                              validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    stage: str = Field(description="The stage that failed the document (ingest, ner, dp, "
                       "llm, sink).")
    error: str = Field(min_length=1)
    failure_class: str | None = Field(None, alias="class", exclude_if=lambda v: v is None,
                                      description="What kind of failure; only when known.")
    attempts: int | None = Field(None, exclude_if=lambda v: v is None,
                                 description="How often it was tried; only when known.")
    quarantined: bool | None = Field(None, exclude_if=lambda v: v is None,
                                     description="True when it is kept out of replays.")


class Checkpoint(_Open):
    """One job's progress, as `checkpoints/{job_id}.json` holds it."""

    job_id: str = Field(pattern=f"^{JOB_ID.pattern}$", json_schema_extra={"format": "uuid"})
    batch_id: str = Field(min_length=1)
    status: JobStatus
    total_documents: Count
    processed_documents: Count
    failed_documents: Count
    processed_doc_ids: DocIds
    failed_doc_ids: DocIds
    created_at: UtcTime
    updated_at: UtcTime
    metadata: CheckpointMetadata
    failures: dict[str, FailureInfo] = Field(
        default_factory=dict, description="Stage and reason of every failed document.")

    @property
    def is_final(self) -> bool:
        """The job will not change on its own any more (see `JobStatus.is_final`)."""
        return self.status.is_final

    @property
    def done(self) -> int:
        """Documents processed or failed."""
        return self.processed_documents + self.failed_documents

    @property
    def ended(self) -> bool:
        """Final, and (for a streamed batch) its total known: what `eventpipe run` waits
        for."""
        return self.is_final and self.metadata.total_known

    def to_file(self) -> dict[str, Any]:
        """The file's content (`status_reason` and `phase` only when set)."""
        return self.model_dump(mode="json")
