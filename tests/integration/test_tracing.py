"""OpenTelemetry traces per document (EVENTPIPE_TRACING, the `otel` extra): the real ingest,
ner, dp, llm and sink code run in this process on the embedded broker, with the SDK's
in-memory exporter; one document's spans form one trace whose context travelled in the
Kafka headers from stage to stage."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventpipe.jobs import submit
from eventpipe.kafka.clients import make_admin
from eventpipe.kafka.topics import Topics, ensure_topics
from eventpipe.kafka.tracing import Tracing
from eventpipe.models import Stage
from eventpipe.nlp.events import build_backend
from eventpipe.nlp.model import load_pipeline
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.stage import StageRunner
from eventpipe.settings import Settings
from eventpipe.storage.factory import open_backends
from helpers import corpus_lines, write_jsonl
from services.dp.service import make_process as dp_process
from services.ingest.service import Ingest
from services.llm.service import make_process as llm_process
from services.ner.service import make_process as ner_process
from services.sink.service import Sink

STAGES = ["ingest", "ner", "dp", "llm", "sink"]


def test_one_documents_spans_share_a_trace_across_the_stages(settings: Settings,
                                                            tmp_path: Path) -> None:
    settings = settings.model_copy(update={"tracing": True})
    ensure_topics(make_admin(settings), settings)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def tracing(service: str) -> Tracing:
        return Tracing(settings, service, provider)

    topics = Topics.from_settings(settings)
    nlp = load_pipeline(settings.spacy_model)
    stop = threading.Event()
    backends = open_backends(settings, stop)
    ingest = Ingest(settings, tracing("ingest"))
    runners = [
        StageRunner(settings, Stage.NER, topics.docs, topics.ner, ner_process(nlp),
                    tracing=tracing("ner")),
        StageRunner(settings, Stage.DP, topics.ner, topics.dp, dp_process(nlp),
                    tracing=tracing("dp")),
        StageRunner(settings, Stage.LLM, topics.dp, topics.events,
                    llm_process(build_backend(settings)), tracing=tracing("llm")),
    ]
    sink = Sink(settings, backends, stop, tracing("sink"))
    loops: list[ConsumeLoop] = [ingest.loop, *(r.loop for r in runners), sink.loop]
    for loop in loops:
        loop.consumer.subscribe(loop.topics)
    for runner in runners:  # as StageRunner.run starts them
        runner.open()
    try:
        sub = submit(settings, write_jsonl(tmp_path / "one.jsonl", corpus_lines(2, seed=5)),
                     "traced")
        # Every service's loop in turn, until both documents' last spans (the sink's) ended.
        deadline = time.monotonic() + 180
        while sum(s.name == "sink" for s in exporter.get_finished_spans()) < 2:
            assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
            for loop in loops:
                loop.step()
    finally:
        for loop in loops:
            loop.consumer.close()
        for runner in runners:
            runner.close()
        for backend in backends:
            backend.close()
        ingest.reader.close()

    spans = [s for s in exporter.get_finished_spans()
             if s.attributes and s.attributes.get("eventpipe.job_id") == sub.job_id]
    by_doc: dict[str, list[Any]] = {}
    for span in spans:
        by_doc.setdefault(str(span.attributes["eventpipe.doc_id"]), []).append(span)
    assert len(by_doc) == 2, sorted(by_doc)
    traces = set()
    for doc_id, doc_spans in by_doc.items():
        named = {s.name: s for s in doc_spans}
        assert sorted(named) == sorted(STAGES) and len(doc_spans) == 5, (doc_id, named)
        # One trace, and each stage's span a child of the one before it: the context went
        # through the Kafka headers of every hop.
        assert len({s.context.trace_id for s in doc_spans}) == 1
        assert named["ingest"].parent is None
        for before, after in pairwise(STAGES):
            assert named[after].parent is not None
            assert named[after].parent.span_id == named[before].context.span_id, after
        traces.add(named["ingest"].context.trace_id)
    assert len(traces) == 2  # a trace per document, not one for the batch


def test_tracing_is_off_by_default_and_costs_nothing() -> None:
    tracing = Tracing(Settings(), "ner")
    span = tracing.start("ner", [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")])
    assert not tracing.enabled and span.headers is None
    span.end()


@pytest.mark.parametrize("value", ["true", "1"])
def test_the_setting_reads_from_the_environment(value: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPIPE_TRACING", value)
    assert Settings().tracing is True
