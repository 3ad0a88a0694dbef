from __future__ import annotations

import json

import pytest

from services.ingest.lines import InvalidLine, ValidLine, parse_line

LIMIT = 1000


@pytest.mark.parametrize(
    ("raw", "doc_id", "words"),
    [
        (b"{oops", "line-3", "not valid JSON"),
        (b'"a string"', "line-3", "JSON str"),
        (b"[1, 2]", "line-3", "JSON list"),
        (b'{"text": "t"}', "line-3", "has no `id`"),
        (b'{"id": true, "text": "t"}', "line-3", "string or an integer"),
        (b'{"id": "a\\u0000b", "text": "t"}', "line-3", "control character"),
        (b'{"id": "d", "text": 5}', "d", "must be a string"),
        (b'{"id": "d"}', "d", "has no `text`"),
        (b'{"id": "d", "text": " \\n "}', "d", "is empty"),
        (b'{"id": "d", "text": "\\ud800"}', "d", "surrogate"),
        (b'{"id": "d", "text": "caf\xe9"}', "line-3", "not valid UTF-8"),
        (json.dumps({"id": "d", "text": "x" * (LIMIT + 1)}).encode(), "d", "limit"),
    ],
)
def test_bad_lines_fail_with_a_clear_reason(raw: bytes, doc_id: str, words: str) -> None:
    result = parse_line(raw, 3, LIMIT)
    assert isinstance(result, InvalidLine)
    assert result.doc_id == doc_id
    assert words in result.reason and "line 3" in result.reason


def test_valid_line_keeps_extra_fields_as_meta() -> None:
    result = parse_line(b'{"id": 7, "text": "Hello.", "source": "wire"}', 1, LIMIT)
    assert result == ValidLine("7", "Hello.", {"source": "wire"})
