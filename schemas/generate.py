"""Writes the JSON Schema of every topic's messages from the message models.
Run `python schemas/generate.py`; a test fails when the committed files are out of date."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

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
}


def render(title: str, model: Any) -> str:
    if isinstance(model, type) and issubclass(model, BaseModel):
        schema = model.model_json_schema()
    else:
        schema = TypeAdapter(model).json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "description": title} | schema
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main() -> int:
    for name, (title, model) in SCHEMAS.items():
        (HERE / name).write_text(render(title, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
