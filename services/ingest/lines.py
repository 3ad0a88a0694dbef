"""Validating one input record (a JSONL line or a message on the submissions topic) into a
document, or into the reason it is not one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from eventpipe.models import check_id


@dataclass(frozen=True)
class Limits:
    """What one document may hold: `text_bytes` so that it fits in a message (the topics'
    max.message.bytes), `text_chars` so that the stages hold it within their memory limits
    (EVENTPIPE_MAX_DOCUMENT_CHARS): past it, dp would be OOM-killed on it again and again."""

    text_bytes: int
    text_chars: int


@dataclass(frozen=True)
class ValidLine:
    doc_id: str
    text: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class InvalidLine:
    doc_id: str
    reason: str


@dataclass(frozen=True)
class LongLine:
    """A line longer than the limit: skipped while reading, never held in memory."""

    size: int


def read_lines(f: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | LongLine]]:
    """(line number, line) for every line of a file; a line of more than `limit` bytes comes
    as a LongLine, read past in chunks, so one huge line costs no more memory than the limit."""
    line_no = 0
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) <= limit or (raw.endswith(b"\n") and len(raw) == limit + 1):
            yield line_no, raw
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = f.readline(1 << 20)
            if not raw:
                break
            size += len(raw)
        yield line_no, LongLine(size - (1 if raw.endswith(b"\n") else 0))


def line_doc_id(line_no: int) -> str:
    """The id a line gets when it has no usable id of its own."""
    return f"line-{line_no}"


def parse_line(raw: bytes, line_no: int, limits: Limits) -> ValidLine | InvalidLine:
    fallback = line_doc_id(line_no)
    try:
        text_line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidLine(fallback, f"line {line_no} is not valid UTF-8 (byte {exc.start})")
    try:
        data = json.loads(text_line)
    except json.JSONDecodeError as exc:
        return InvalidLine(fallback, f"line {line_no} is not valid JSON: {exc.msg} "
                           f"at column {exc.colno}")
    return validate_document(data, f"line {line_no}", fallback, limits)


def validate_document(
    data: Any, where: str, fallback_id: str, limits: Limits, ignore: tuple[str, ...] = ()
) -> ValidLine | InvalidLine:
    """`where` names the record in reasons ("line 7"); fields in `ignore` (the envelope of a
    Kafka submission) are not kept as meta."""
    if not isinstance(data, dict):
        return InvalidLine(fallback_id, f"{where} is a JSON {type(data).__name__}, "
                           "not an object with `id` and `text`")
    raw_id = data.get("id")
    if raw_id is None:
        return InvalidLine(fallback_id, f"{where} has no `id`")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return InvalidLine(fallback_id, f"{where}: `id` must be a string or an integer")
    try:
        doc_id = check_id(str(raw_id), "`id`")
    except ValueError as exc:
        return InvalidLine(fallback_id, f"{where}: {exc}")
    text = data.get("text")
    if text is None:
        return InvalidLine(doc_id, f"{where} has no `text`")
    if not isinstance(text, str):
        return InvalidLine(doc_id, f"{where}: `text` must be a string, "
                           f"not {type(text).__name__}")
    if not text.strip():
        return InvalidLine(doc_id, f"{where}: `text` is empty")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return InvalidLine(doc_id, f"{where} contains an unpaired surrogate escape")
    if len(text) > limits.text_chars:
        return InvalidLine(doc_id, f"{where}: document {doc_id!r} is {len(text)} characters "
                           f"long; the limit is {limits.text_chars} "
                           "(EVENTPIPE_MAX_DOCUMENT_CHARS)")
    size = len(text.encode("utf-8"))
    if size > limits.text_bytes:
        return InvalidLine(doc_id, f"{where}: `text` is {size} bytes; the limit is "
                           f"{limits.text_bytes} (EVENTPIPE_MAX_MESSAGE_BYTES)")
    meta = {k: v for k, v in data.items() if k not in ("id", "text", *ignore)}
    return ValidLine(doc_id, text, meta)
