"""Entities and sentences out of spaCy docs, and the repair that makes split-process NER
exact.

The NER stage runs ``ner`` alone on raw text; the DP stage later parses the same text. In the
full pipeline ``ner`` runs after the parser has marked sentence starts, and spaCy's NER
transition system forbids an entity from crossing a sentence start (its Begin and In actions
are invalid there). Run alone, no sentence starts are known, so it may predict such an
entity. `fix_cross_sentence_entities` restores the full pipeline's result.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from spacy.language import Language
from spacy.tokens import Doc

from eventpipe.models import Entity


def entities_from_doc(doc: Doc) -> list[Entity]:
    return [
        Entity(text=ent.text, label=ent.label_, start_char=ent.start_char, end_char=ent.end_char)
        for ent in doc.ents
    ]


def sentences_from_doc(doc: Doc) -> list[tuple[int, int]]:
    """Character spans of the doc's sentences (needs sentence boundaries, e.g. a parse)."""
    return [(sent.start_char, sent.end_char) for sent in doc.sents]


def sentence_starts(doc: Doc) -> list[int]:
    """Character offsets of the tokens that the parser marked as starting a sentence."""
    return [token.idx for token in doc if token.i > 0 and token.is_sent_start]


def crosses_sentence(entities: Sequence[Entity], starts: Sequence[int]) -> bool:
    """Whether any entity contains a sentence start after its first character."""
    ordered = sorted(starts)
    for ent in entities:
        after = bisect.bisect_right(ordered, ent.start_char)
        if after < len(ordered) and ordered[after] < ent.end_char:
            return True
    return False


def fix_cross_sentence_entities(
    nlp: Language, doc: Doc, entities: Sequence[Entity]
) -> list[Entity]:
    """Entities equal to what the full pipeline would find, given the parsed `doc` and the
    `entities` that ``ner`` found running alone on the same text.

    Cheap path (the common case): no entity crosses a sentence start, so the entities are
    already exact. NER decodes greedily, its action scores come from its own tok2vec over the
    tokens' lexical features and do not depend on sentence starts, and the sentence
    constraint only removes actions. If the unconstrained best action at each step never
    crossed a boundary, it was also valid, hence still the best, under the constraint, so the
    constrained run takes the same actions step by step.

    Slow path: rerun ``ner`` on the parsed doc, which now carries the sentence starts; this
    sets ``doc.ents``.
    """
    if not crosses_sentence(entities, sentence_starts(doc)):
        return list(entities)
    # Start from "missing" annotations, as in the full pipeline: NER keeps preset entities.
    doc.set_ents([], default="missing")
    nlp.get_pipe("ner")(doc)
    return entities_from_doc(doc)
