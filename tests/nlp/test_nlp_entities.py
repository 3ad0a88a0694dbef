"""Entities, sentences, and the repair that makes NER run apart from the parser exact."""

from __future__ import annotations

from collections.abc import Callable

from spacy.language import Language

from eventpipe.models import Entity
from eventpipe.nlp.entities import (
    crosses_sentence,
    entities_from_doc,
    fix_cross_sentence_entities,
    sentence_starts,
    sentences_from_doc,
)
from eventpipe.nlp.model import pipe_ner, pipe_parse
from support.corpus import generate_documents

# Run alone, NER joins these across the full stop; after the parser it does not.
CROSSING_TEXTS = (
    "Apple bought Beats. Microsoft Corp. Google rose.",
    "The company is based in Boston, Mass. Boston Scientific declined to comment.",
    "She moved to Washington D.C. Washington Post reporters followed.",
)
OTHER_TEXTS = (
    "He met John Smith. Smith Barney said no.",
    "He works at Goldman Sachs. Morgan Stanley declined to comment.",
    "The storm hit Florida on Monday. Tuesday brought more rain.",
    "Talks were held with Kestrel Group Ltd. Meridian Capital said nothing.",
    "",
    "   ",
    "no entities here at all.",
)


def entity(text: str, label: str, start: int) -> Entity:
    return Entity(text=text, label=label, start_char=start, end_char=start + len(text))


def test_entities_with_labels_and_offsets(nlp: Language) -> None:
    doc = nlp("Apple acquired Beats Electronics for $3 billion on Tuesday.")
    assert entities_from_doc(doc) == [
        entity("Apple", "ORG", 0),
        entity("Beats Electronics", "ORG", 15),
        entity("$3 billion", "MONEY", 37),
        entity("Tuesday", "DATE", 51),
    ]


def test_entity_offsets_index_the_text(nlp: Language) -> None:
    text = "Maria Lopez visited Berlin in March 2025. She met Mayor Anna Kowalski in Warsaw."
    found = entities_from_doc(nlp(text))
    assert [(e.text, e.label) for e in found][:3] == [
        ("Maria Lopez", "PERSON"),
        ("Berlin", "GPE"),
        ("March 2025", "DATE"),
    ]
    assert all(text[e.start_char : e.end_char] == e.text for e in found)


def test_sentences_are_character_spans(nlp: Language) -> None:
    text = "Maria Lopez visited Berlin in March 2025. She met the mayor."
    assert sentences_from_doc(nlp(text)) == [(0, 41), (42, 60)]


def test_crosses_sentence() -> None:
    ents = [entity("Microsoft Corp. Google", "ORG", 20)]
    assert crosses_sentence(ents, [20, 36])
    assert not crosses_sentence(ents, [20, 42])  # a start at the entity's own start is fine
    assert not crosses_sentence(ents, [42])  # a start right after its end is fine
    assert not crosses_sentence([], [3])
    assert crosses_sentence([entity("Ab", "ORG", 0), ents[0]], [36, 1])


def test_cheap_path_leaves_the_doc_alone(nlp: Language) -> None:
    text = "He met John Smith. Smith Barney said no."
    (ner_doc,) = pipe_ner(nlp, [text])
    (parsed,) = pipe_parse(nlp, [text])
    ents = entities_from_doc(ner_doc)
    assert fix_cross_sentence_entities(nlp, parsed, ents) == ents
    assert parsed.ents == ()  # NER did not run again


def test_slow_path_reruns_ner_under_sentence_constraints(nlp: Language) -> None:
    text = CROSSING_TEXTS[0]
    (ner_doc,) = pipe_ner(nlp, [text])
    (parsed,) = pipe_parse(nlp, [text])
    alone = entities_from_doc(ner_doc)
    assert entity("Microsoft Corp. Google", "ORG", 20) in alone
    fixed = fix_cross_sentence_entities(nlp, parsed, alone)
    assert fixed == [entity("Apple", "ORG", 0), entity("Microsoft Corp.", "ORG", 20)]
    assert fixed == entities_from_doc(nlp(text))


def split_pipeline_entities(nlp: Language, texts: list[str]) -> tuple[list[list[Entity]], int]:
    """What the NER stage and then the DP stage produce, and how often the slow path ran.
    The stages batch documents as they arrive, so the batch sizes differ on purpose."""
    ner_docs = list(pipe_ner(nlp, texts, batch_size=7))
    parsed_docs = list(pipe_parse(nlp, texts, batch_size=13))
    results, slow = [], 0
    for ner_doc, parsed in zip(ner_docs, parsed_docs, strict=True):
        alone = entities_from_doc(ner_doc)
        slow += crosses_sentence(alone, sentence_starts(parsed))
        results.append(fix_cross_sentence_entities(nlp, parsed, alone))
    return results, slow


def test_split_pipeline_equals_full_pipeline(
    nlp: Language, record_property: Callable[[str, object], None]
) -> None:
    texts = [doc["text"] for doc in generate_documents(300, seed=7)]
    texts += [*CROSSING_TEXTS, *OTHER_TEXTS]
    split, slow = split_pipeline_entities(nlp, texts)
    full = [entities_from_doc(doc) for doc in nlp.pipe(texts, batch_size=64)]
    mismatched = [text for text, a, b in zip(texts, split, full, strict=True) if a != b]
    assert mismatched == []
    record_property("slow_path_documents", slow)
    print(f"slow path ran for {slow} of {len(texts)} documents")
    # The corpus has abbreviations at sentence ends, so the slow path is exercised too.
    assert len(CROSSING_TEXTS) < slow < len(texts) // 10
