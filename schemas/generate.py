"""Writes the JSON Schema of every topic's messages and of the checkpoint file from their
models.
Run `python schemas/generate.py`; a test fails when the committed files are out of date."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.models import (
    CheckpointRecord,
    ControlMessage,
    DocumentMessage,
    FailedDocument,
    StreamDocument,
    StreamEnd,
    Submission,
)

HERE = Path(__file__).parent

SCHEMAS: dict[str, tuple[str, Any]] = {
    "document.schema.json": ("Documents on the docs, ner, dp and events topics", DocumentMessage),
    "failed.schema.json": ("A failed document on the failed topic", FailedDocument),
    "control.schema.json": ("pause / resume / stop on the control topic (key: job id)",
                            ControlMessage),
    "submission.schema.json": ("A JSONL file submission on the submissions topic",
                               Submission),
    "submission-document.schema.json": (
        "One document of a batch sent on the submissions topic by any producer (key: batch id)",
        StreamDocument),
    "submission-end.schema.json": (
        "Closes a batch sent on the submissions topic: `count` documents were sent", StreamEnd),
    "checkpoint-record.schema.json": ("Records on the compacted checkpoint topic",
                                      CheckpointRecord),
    "checkpoint.schema.json": (
        "The earlier system's checkpoint format, field for field, plus `failures` (stage and "
        "reason per failed document). More keys may be added, never fewer.", Checkpoint),
}
# Files eventpipe writes: their schema is of what is written (every field with a default is
# there too), not of what a reader accepts.
WRITTEN = {"checkpoint.schema.json"}
# What names a schema beyond its description, by file.
HEADERS: dict[str, dict[str, str]] = {
    "checkpoint.schema.json": {
        "$id": "https://eventpipe.dev/schemas/checkpoint.schema.json",
        "title": "eventpipe checkpoint file (checkpoints/{job_id}.json)",
    },
}


def render(title: str, model: Any, header: dict[str, str] | None = None,
           written: bool = False) -> str:
    if isinstance(model, type) and issubclass(model, BaseModel):
        schema = model.model_json_schema(mode="serialization" if written else "validation")
    else:
        schema = TypeAdapter(model).json_schema()
    schema = ({"$schema": "https://json-schema.org/draft/2020-12/schema"} | (header or {})
              | {"description": title}
              | {k: v for k, v in schema.items() if k not in ("title", "description")
                 or not header})
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main() -> int:
    for name, (title, model) in SCHEMAS.items():
        (HERE / name).write_text(render(title, model, HEADERS.get(name), name in WRITTEN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
