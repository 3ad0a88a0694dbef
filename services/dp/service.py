from __future__ import annotations

from collections.abc import Sequence

from spacy.language import Language

from eventpipe.kafka.topics import Topics
from eventpipe.models import DocumentMessage, Stage
from eventpipe.nlp.attributes import LazyAttributes
from eventpipe.nlp.entities import (
    entities_from_doc,
    fix_cross_sentence_entities,
    sentences_from_doc,
)
from eventpipe.nlp.memory import WARM_DOCUMENTS, BatchZones
from eventpipe.nlp.model import NER_COMPONENTS, load_pipeline, parse_only, pipeline_id
from eventpipe.nlp.predicates import candidate_positions, predicates_from_doc
from eventpipe.nlp.triplets import attribute_readers, triplets_from_doc
from eventpipe.runtime.service import main_for
from eventpipe.runtime.stage import ProcessBatch, StageResult, StageRunner
from eventpipe.settings import Settings


def make_process(nlp: Language, warm_documents: int = WARM_DOCUMENTS, *,
                 with_ner: bool = False) -> ProcessBatch:
    """The DP stage; `with_ner`: the NER stage too, in the same call (a chained worker,
    services/chain): NER then runs after the parser, with its sentence boundaries, as in
    the full pipeline, and its entities need no fixing."""
    zones = BatchZones(nlp, warm_documents)
    # POS and lemmas only where the triplets read them (see eventpipe.nlp.attributes).
    attributes = LazyAttributes(nlp)
    disabled = [name for name in parse_only(nlp) if not (with_ner and name in NER_COMPONENTS)]
    disabled += attributes.skipped

    def process(docs: Sequence[DocumentMessage]) -> list[StageResult]:
        out: list[StageResult] = []
        # Strings first seen in this batch are dropped at its end (flat memory); everything
        # kept is copied out of the spaCy docs inside the zone.
        with zones.batch(len(docs)):
            parsed = nlp.pipe((d.text for d in docs), disable=disabled, batch_size=len(docs))
            for doc, sp in zip(docs, parsed, strict=True):
                # POS and lemmas of the triplets' verbs and of every event candidate.
                candidates = candidate_positions(sp)
                attributes.annotate(sp, attribute_readers(sp) + candidates)
                if with_ner:
                    doc.entities = entities_from_doc(sp)
                else:
                    # The NER stage ran without sentence boundaries; this makes its entities
                    # equal to the full pipeline's (re-running NER only where one crosses one).
                    doc.entities = fix_cross_sentence_entities(nlp, sp, doc.entities)
                doc.sentences = sentences_from_doc(sp)
                doc.triplets = triplets_from_doc(sp)
                doc.predicates = predicates_from_doc(sp, candidates)
                out.append(doc)
        return out

    return process


def run(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    nlp = load_pipeline(settings.spacy_model)
    StageRunner(settings, Stage.DP, topics.ner, topics.dp, make_process(nlp),
                model=pipeline_id(nlp)).run()


main = main_for("dp", run)
