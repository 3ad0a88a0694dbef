from __future__ import annotations

from collections.abc import Sequence

from eventpipe.kafka.topics import Topics
from eventpipe.models import DocumentMessage, Stage
from eventpipe.nlp.events import EventBackend, EventInput, build_backend, fallback_kind
from eventpipe.nlp.llm import LLMBackend
from eventpipe.runtime.metrics import EVENTS_BY_BACKEND
from eventpipe.runtime.service import main_for
from eventpipe.runtime.stage import ProcessBatch, StageResult, StageRunner
from eventpipe.settings import Settings


def make_process(backend: EventBackend) -> ProcessBatch:
    def process(docs: Sequence[DocumentMessage]) -> list[StageResult]:
        inputs = [EventInput(d.text, d.entities, d.triplets, d.sentences, d.predicates)
                  for d in docs]
        out: list[StageResult] = []
        for doc, result in zip(docs, backend.extract_results(inputs), strict=True):
            if isinstance(result, Exception):
                out.append(result)  # fails this document only
                continue
            doc.events = result.events
            doc.events_backend = result.backend
            doc.events_fallback = result.fallback
            EVENTS_BY_BACKEND.labels(result.backend, fallback_kind(result.fallback)).inc()
            out.append(doc)
        return out

    return process


def run(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    backend = build_backend(settings)
    # A local model is unloaded while the stage idles (eventpipe.runtime.idle).
    release = backend.release if isinstance(backend, LLMBackend) else None
    model = backend.identity if isinstance(backend, LLMBackend) else settings.llm_backend
    StageRunner(settings, Stage.LLM, topics.dp, topics.events, make_process(backend),
                release=release, model=model).run()


main = main_for("llm", run)
