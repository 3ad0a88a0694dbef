"""Crafted batches through the real pipeline functions (the NER, DP and events stages'
process functions, the sink's record), for the linking tests."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from spacy.language import Language

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.models import DocumentMessage
from eventpipe.nlp.events import RulesBackend
from eventpipe.nlp.model import load_pipeline
from services.dp.service import make_process as dp_process
from services.llm.service import make_process as events_process
from services.ner.service import make_process as ner_process
from services.sink.service import result_record

JOB = "6f1c2b9e-4d1a-5e7f-9a3b-2c8d0e4f6a10"


@lru_cache(maxsize=1)
def _nlp() -> Language:
    return load_pipeline()


def through_pipeline(docs: Sequence[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
    """(id, text, publication date) -> saved records, as the sink writes them."""
    nlp = _nlp()
    messages: Sequence[Any] = [
        DocumentMessage(job_id=JOB, batch_id="b", doc_id=doc_id, text=text,
                        meta={"published": day} if day else {})
        for doc_id, text, day in docs]
    for process in (ner_process(nlp), dp_process(nlp), events_process(RulesBackend())):
        messages = process(messages)
        assert not [m for m in messages if isinstance(m, Exception)]
    return [result_record(m, "2026-01-01T00:00:00Z") for m in messages]


def checkpoint(records: list[dict[str, Any]], failed: int = 0) -> Checkpoint:
    failures = {f"bad{i}": {"stage": "ingest", "error": "line 9 is not valid JSON: x"}
                for i in range(failed)}
    at = "2025-03-01T00:00:00Z"
    return Checkpoint.model_validate({
        "job_id": JOB, "batch_id": "b", "status": "RUNNING",
        "total_documents": len(records) + failed, "processed_documents": len(records),
        "failed_documents": failed, "processed_doc_ids": [r["id"] for r in records],
        "failed_doc_ids": list(failures), "created_at": at, "updated_at": at,
        "metadata": {"started_at": at}, "failures": failures})
