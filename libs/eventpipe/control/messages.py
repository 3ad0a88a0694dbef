"""Parsing control messages written by any Kafka producer."""

from __future__ import annotations

import json

from pydantic import ValidationError

from eventpipe.errors import InvalidControlMessage as InvalidControlMessage
from eventpipe.models import ControlCommand, ControlMessage, check_id, job_id_for


def parse_control(value: bytes | None) -> ControlMessage:
    """`{"command": "pause"|"resume"|"stop", "job_id": ...}`; a `batch_id` may stand in for
    the job id (job ids are derived from batch ids)."""
    if value is None:
        raise InvalidControlMessage("empty control message")
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidControlMessage(f"control message is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidControlMessage("control message must be a JSON object")
    if "job_id" not in data and isinstance(data.get("batch_id"), str):
        try:
            data["job_id"] = job_id_for(check_id(data["batch_id"], "batch_id"))
        except ValueError as exc:
            raise InvalidControlMessage(str(exc)) from exc
    command = data.get("command")
    if command not in {c.value for c in ControlCommand}:
        raise InvalidControlMessage(
            f"unknown command {command!r}; expected one of pause, resume, stop"
        )
    try:
        return ControlMessage.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "message"
        raise InvalidControlMessage(f"invalid control message: {field}: {err['msg']}") from exc


def encode_control(command: ControlCommand, job_id: str) -> bytes:
    return ControlMessage(command=command, job_id=job_id).model_dump_json().encode()

