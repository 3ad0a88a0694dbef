from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Message
from pydantic import ValidationError

from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.topics import Topics
from eventpipe.models import DocRecord, DocumentMessage, FailedDocument, Stage, utc_now
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.service import main_for
from eventpipe.runtime.stage import decode_document, failure_for_undecodable
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import JsonlStore

log = logging.getLogger(__name__)


def result_line(doc: DocumentMessage, saved_at: str) -> dict[str, Any]:
    return {
        "id": doc.doc_id,
        "job_id": doc.job_id,
        "batch_id": doc.batch_id,
        "text": doc.text,
        "meta": doc.meta,
        "entities": [e.model_dump() for e in doc.entities],
        "triplets": [t.model_dump() for t in doc.triplets],
        "events": [e.model_dump() for e in doc.events],
        "timings_ms": doc.timings_ms,
        "saved_at": saved_at,
    }


class Sink:
    def __init__(self, settings: Settings) -> None:
        topics = Topics.from_settings(settings)
        self.events_topic = topics.events
        self.store = JsonlStore(settings.data_dir, fsync=settings.fsync)
        producer = make_producer(settings)
        self.checkpoints = CheckpointWriter(settings, producer)
        self.loop = ConsumeLoop(
            settings,
            service="sink",
            topics=[topics.events, topics.failed],
            group_id=f"{settings.topic_prefix}-sink",
            handle=self.handle,
            producer=producer,
        )

    def _decode(self, msg: Message) -> DocumentMessage | FailedDocument:
        try:
            if msg.topic() == self.events_topic:
                return decode_document(msg.value())
            return FailedDocument.model_validate_json(msg.value() or b"")
        except (ValueError, ValidationError) as exc:
            return failure_for_undecodable(msg.value(), Stage.SINK, exc)

    def handle(self, msgs: list[Message]) -> None:
        now = utc_now()
        items = [self._decode(m) for m in msgs]
        docs = [i for i in items if isinstance(i, DocumentMessage)]
        # 1. save every processed document (idempotent, fsync'd) ...
        self.store.save_many([result_line(d, now) for d in docs])
        # 2. ... then record outcomes; the loop commits only after these are acknowledged.
        for item in items:
            if isinstance(item, DocumentMessage):
                record = DocRecord(job_id=item.job_id, doc_id=item.doc_id, state="processed",
                                   at=now)
            else:
                record = DocRecord(job_id=item.job_id, doc_id=item.doc_id, state="failed",
                                   stage=item.stage, error=item.error, at=now)
            self.checkpoints.send(record)
        self.checkpoints.flush()
        log.debug("saved", extra={"documents": len(docs), "records": len(items)})

    def run(self) -> None:
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.store.close()


def run(settings: Settings) -> None:
    Sink(settings).run()


main = main_for("sink", run)
