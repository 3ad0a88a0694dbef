from __future__ import annotations

import json

import pytest

from services.ingest.lines import InvalidLine, Limits, ValidLine, parse_line

LIMIT = 1000
LIMITS = Limits(text_bytes=LIMIT, text_chars=600)


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
        # Under the character limit, over the byte limit (2 bytes a character).
        (json.dumps({"id": "d", "text": "\u00e9" * 501}, ensure_ascii=False).encode(), "d",
         "`text` is 1002 bytes; the limit is 1000 (EVENTPIPE_MAX_MESSAGE_BYTES)"),
        (json.dumps({"id": "d", "text": "x" * 601}).encode(), "d",
         "document 'd' is 601 characters long; the limit is 600 "
         "(EVENTPIPE_MAX_DOCUMENT_CHARS)"),
    ],
)
def test_bad_lines_fail_with_a_clear_reason(raw: bytes, doc_id: str, words: str) -> None:
    result = parse_line(raw, 3, LIMITS)
    assert isinstance(result, InvalidLine)
    assert result.doc_id == doc_id
    assert words in result.reason and "line 3" in result.reason


def test_valid_line_keeps_extra_fields_as_meta() -> None:
    result = parse_line(b'{"id": 7, "text": "Hello.", "source": "wire"}', 1, LIMITS)
    assert result == ValidLine("7", "Hello.", {"source": "wire"})


def test_a_document_at_the_character_limit_passes() -> None:
    result = parse_line(json.dumps({"id": "d", "text": "x" * 600}).encode(), 1, LIMITS)
    assert isinstance(result, ValidLine) and len(result.text) == 600


def test_lines_over_the_limit_are_skipped_without_being_held() -> None:
    import io
    import tracemalloc

    from services.ingest.lines import LongLine, read_lines

    big = b"x" * (20 * 1024 * 1024)
    data = b"a\n" + b"b" * 10 + b"\n" + big + b"\n" + b"c" * 11 + b"\n\nlast"
    tracemalloc.start()
    out = list(read_lines(io.BytesIO(data), limit=10))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out == [(1, b"a\n"), (2, b"b" * 10 + b"\n"), (3, LongLine(len(big))),
                   (4, LongLine(11)), (5, b"\n"), (6, b"last")]
    assert peak < 4 * 1024 * 1024  # read in chunks, never the 20 MB line at once


@pytest.mark.parametrize("bad", ["bad\ud800id", "x\n", "\x7f", "\x85next-line", ""])
def test_ids_refused_at_the_model_boundary(bad: str) -> None:
    from eventpipe.models import check_id, safe_id

    with pytest.raises(ValueError):
        check_id(bad, "id")
    assert safe_id(bad).encode()  # a failure record can always carry it
    assert len(safe_id("i" * 10_000)) == 512
