"""A chained runner (services/chain's layout) on the embedded broker: stages run one after
the other in one process; a document enters at the stage whose topic it came from; a
failure is the failing stage's, with that stage's input as payload, as in the one-process-
per-stage layout. The stage functions here are small pure functions; the topics, the
consumer and the producer are real."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from eventpipe.kafka.clients import make_admin, make_producer, make_reader
from eventpipe.kafka.topics import Topics, ensure_topics
from eventpipe.models import DocumentMessage, Entity, FailedDocument, Stage
from eventpipe.runtime.stage import StageResult, StageRunner, Step
from eventpipe.settings import Settings

FUSED_CALLS: list[int] = []


def ner(docs: Sequence[DocumentMessage]) -> list[StageResult]:
    for doc in docs:
        doc.entities = [Entity(text="Ner", label="ORG", start_char=0, end_char=3)]
    return list(docs)


def dp(docs: Sequence[DocumentMessage]) -> list[StageResult]:
    out: list[StageResult] = []
    for doc in docs:
        if doc.doc_id.startswith("bad-dp"):
            out.append(ValueError(f"dp refuses {doc.doc_id}"))
            continue
        doc.sentences = [(0, len(doc.text))]
        out.append(doc)
    return out


def fused(docs: Sequence[DocumentMessage]) -> list[StageResult]:
    FUSED_CALLS.append(len(docs))
    return dp(ner(docs))


def events(docs: Sequence[DocumentMessage]) -> list[StageResult]:
    for doc in docs:
        doc.events_backend = "rules"
    return list(docs)


def read_all(settings: Settings, topic: str, want: int, deadline: float) -> list[bytes]:
    reader = make_reader(settings)
    try:
        meta = reader.list_topics(topic, timeout=10).topics[topic]
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        values: list[bytes] = []
        while len(values) < want and time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is not None and msg.error() is None and msg.value():
                values.append(msg.value())
        return values
    finally:
        reader.close()


def test_documents_enter_the_chain_at_their_topics_stage_and_fail_as_that_stage(
        settings: Settings) -> None:
    ensure_topics(make_admin(settings), settings)
    topics = Topics.from_settings(settings)
    runner = StageRunner(
        settings, Stage.NER, topics.docs, topics.events, ner, model="m-ner",
        then=[Step(Stage.DP, topics.ner, dp, "m-dp"), Step(Stage.LLM, topics.dp, events)],
        fused=fused, service="chain")
    producer = make_producer(settings)

    def send(topic: str, doc: DocumentMessage) -> None:
        producer.produce(topic, key=doc.doc_id.encode(), value=doc.model_dump_json().encode())

    def doc(doc_id: str) -> DocumentMessage:
        return DocumentMessage(job_id="j1", batch_id="b1", doc_id=doc_id, text="Ner said so")

    for doc_id in ("a", "b", "bad-dp"):
        send(topics.docs, doc(doc_id))
    # As a replay or a reprocess from the DP stage sends it: with NER's output already on.
    replayed = doc("from-ner")
    replayed.entities = [Entity(text="Earlier", label="ORG", start_char=0, end_char=7)]
    send(topics.ner, replayed)
    assert producer.flush(30) == 0

    runner.loop.consumer.subscribe(runner.loop.topics)
    runner.open()
    try:
        deadline = time.monotonic() + 90
        out: dict[str, DocumentMessage] = {}
        failed: list[FailedDocument] = []
        while (len(out) < 3 or not failed) and time.monotonic() < deadline:
            runner.loop.step()
            soon = time.monotonic() + 1
            out = {d.doc_id: d for d in map(DocumentMessage.model_validate_json,
                                            read_all(settings, topics.events, 3, soon))}
            failed = [FailedDocument.model_validate_json(v)
                      for v in read_all(settings, topics.failed, 1, soon)]
    finally:
        runner.loop.consumer.close()
        runner.close()

    assert sorted(out) == ["a", "b", "from-ner"]
    # From the docs topic: both stages in one fused call, timed under both names.
    assert FUSED_CALLS and sum(FUSED_CALLS) == 3
    assert out["a"].entities[0].text == "Ner" and out["a"].events_backend == "rules"
    assert set(out["a"].timings_ms) == {"ner+dp", "llm"}
    assert out["a"].models == {"ner": "m-ner", "dp": "m-dp"}
    # From the ner topic: DP and the events stage only; NER's output kept as it came.
    assert out["from-ner"].entities[0].text == "Earlier"
    assert set(out["from-ner"].timings_ms) == {"dp", "llm"}
    assert out["from-ner"].models == {"dp": "m-dp"}
    # The failure is the DP stage's, and its payload the DP stage's input (NER's output),
    # so that a replay sends it to the DP stage's topic with nothing lost.
    [failure] = failed
    assert (failure.doc_id, failure.stage) == ("bad-dp", Stage.DP)
    assert "dp refuses bad-dp" in failure.error
    assert failure.payload is not None and failure.payload.entities[0].text == "Ner"
