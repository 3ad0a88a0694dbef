from __future__ import annotations

from collections.abc import Sequence

from spacy.language import Language

from eventpipe.kafka.topics import Topics
from eventpipe.models import DocumentMessage, Stage
from eventpipe.nlp.entities import entities_from_doc
from eventpipe.nlp.memory import WARM_DOCUMENTS, BatchZones
from eventpipe.nlp.model import load_pipeline, ner_only, pipeline_id
from eventpipe.runtime.service import main_for
from eventpipe.runtime.stage import ProcessBatch, StageResult, StageRunner
from eventpipe.settings import Settings


def make_process(nlp: Language, warm_documents: int = WARM_DOCUMENTS) -> ProcessBatch:
    zones = BatchZones(nlp, warm_documents)
    disabled = ner_only(nlp)

    def process(docs: Sequence[DocumentMessage]) -> list[StageResult]:
        out: list[StageResult] = []
        # Strings first seen in this batch are dropped at its end (flat memory); the
        # entities are plain strings by then.
        with zones.batch(len(docs)):
            parsed = nlp.pipe((d.text for d in docs), disable=disabled, batch_size=len(docs))
            for doc, sp in zip(docs, parsed, strict=True):
                doc.entities = entities_from_doc(sp)
                out.append(doc)
        return out

    return process


def run(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    nlp = load_pipeline(settings.spacy_model)
    StageRunner(settings, Stage.NER, topics.docs, topics.ner, make_process(nlp),
                model=pipeline_id(nlp)).run()


main = main_for("ner", run)
