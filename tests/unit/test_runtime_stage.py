"""`eventpipe.runtime.stage` without Kafka: one bad document fails alone, a batch is never
lost to a miscounted answer, and foreign messages keep what ids they have."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from eventpipe.models import DocumentMessage, Stage
from eventpipe.runtime.stage import (
    StageResult,
    decode_document,
    failure_for_undecodable,
    process_isolated,
)


def doc(doc_id: str) -> DocumentMessage:
    return DocumentMessage(job_id="j", batch_id="b", doc_id=doc_id, text=f"text {doc_id}")


class Upper:
    """A stage that upper-cases the text and cannot bear a document whose id is 'bad'."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, docs: Sequence[DocumentMessage]) -> list[StageResult]:
        self.calls.append([d.doc_id for d in docs])
        if any(d.doc_id == "bad" for d in docs):
            raise ValueError("cannot bear 'bad'")
        return [d.model_copy(update={"text": d.text.upper()}) for d in docs]


def test_a_good_batch_is_one_call() -> None:
    stage = Upper()
    out = process_isolated(stage, [doc("a"), doc("b")])
    assert [r.text for r in out if isinstance(r, DocumentMessage)] == ["TEXT A", "TEXT B"]
    assert stage.calls == [["a", "b"]]


def test_one_bad_document_fails_alone() -> None:
    stage = Upper()
    out = process_isolated(stage, [doc("a"), doc("bad"), doc("c")])
    assert isinstance(out[1], ValueError) and "bad" in str(out[1])
    assert [r.text for r in (out[0], out[2]) if isinstance(r, DocumentMessage)] == [
        "TEXT A", "TEXT C"]
    assert stage.calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_a_single_failing_document_is_not_retried() -> None:
    stage = Upper()
    (out,) = process_isolated(stage, [doc("bad")])
    assert isinstance(out, ValueError) and stage.calls == [["bad"]]


def test_a_miscounted_answer_is_redone_one_by_one() -> None:
    def drops_the_last(docs: Sequence[DocumentMessage]) -> list[StageResult]:
        return list(docs[:1]) if len(docs) > 1 else list(docs)

    out = process_isolated(drops_the_last, [doc("a"), doc("b"), doc("c")])
    assert [r.doc_id for r in out if isinstance(r, DocumentMessage)] == ["a", "b", "c"]


def test_messages_that_are_not_documents() -> None:
    with pytest.raises(ValueError, match="empty message"):
        decode_document(None)
    with pytest.raises(ValueError):
        decode_document(b'{"job_id": "j"}')
    failure = failure_for_undecodable(b'{"job_id": "j", "doc_id": "d7", "text": 3}', Stage.NER,
                                      ValueError("no batch_id"))
    assert (failure.job_id, failure.doc_id, failure.batch_id) == ("j", "d7", "unknown")
    assert failure.stage is Stage.NER and "invalid message on the work topic" in failure.error
    junk = failure_for_undecodable(b"\xff not json", Stage.DP, ValueError("x"))
    assert (junk.job_id, junk.doc_id) == ("unknown", "unknown")
