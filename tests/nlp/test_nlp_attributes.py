"""POS and lemmas for only the tokens the triplets read: the same as the full pipeline's."""

from __future__ import annotations

import spacy
from spacy.language import Language
from spacy.pipeline import AttributeRuler

from eventpipe.models import DocumentMessage, job_id_for
from eventpipe.nlp.attributes import LazyAttributes, windowable
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.model import parse_only, pipe_ner
from eventpipe.nlp.triplets import attribute_readers, triplets_from_doc
from services.dp.service import make_process
from support.corpus import generate_documents

# Contractions and pronouns are where the ruler's word-specific rules (some two tokens long)
# and lemma exceptions apply; the rest covers shared subjects, passives and particles.
TRICKY = (
    "I'd say we can't go, but he'll have done it and they're gone.",
    "I was told it isn't over; she's been arrested and charged, and he's fled.",
    "The firm took over its rival and plans to sell the unit.",
    "Men who attacked the bank were caught by police in Rome.",
    "It's 5 p.m. in N.Y. and there's ain't nothing gonna stop 'em.",
    "",
    " \n ",
)


def texts() -> list[str]:
    return [*TRICKY, *(d["text"] for d in generate_documents(150, seed=11))]


def test_every_token_annotated_lazily_equals_the_full_pipeline(nlp: Language) -> None:
    lazy = LazyAttributes(nlp)
    assert lazy.skipped == ["attribute_ruler", "lemmatizer"]
    full = nlp.pipe(texts(), disable=["ner"])
    parsed = nlp.pipe(texts(), disable=parse_only(nlp) + lazy.skipped)
    for a, b in zip(full, parsed, strict=True):
        lazy.annotate(b, range(len(b)))
        assert [(t.pos_, t.tag_, str(t.morph), t.lemma_) for t in a] == \
            [(t.pos_, t.tag_, str(t.morph), t.lemma_) for t in b], a.text


def test_only_the_wanted_tokens_is_enough_for_the_triplets(nlp: Language) -> None:
    lazy = LazyAttributes(nlp)
    full = nlp.pipe(texts(), disable=["ner"])
    parsed = nlp.pipe(texts(), disable=parse_only(nlp) + lazy.skipped)
    count = 0
    for a, b in zip(full, parsed, strict=True):
        wanted = attribute_readers(b)
        assert len(wanted) < max(1, len(b))
        lazy.annotate(b, wanted)
        assert triplets_from_doc(a) == triplets_from_doc(b), a.text
        count += len(triplets_from_doc(a))
    assert count > 500  # the corpus gives the comparison something to compare


def test_dp_stage_output_equals_the_full_pipeline(nlp: Language) -> None:
    all_texts = texts()
    messages = [
        DocumentMessage(job_id=job_id_for("b"), batch_id="b", doc_id=f"d{n}", text=text,
                        entities=entities_from_doc(ner_doc))
        for n, (text, ner_doc) in enumerate(zip(all_texts, pipe_ner(nlp, all_texts),
                                                strict=True))
    ]
    results = make_process(nlp)(messages)
    for message, doc in zip(results, nlp.pipe(all_texts), strict=True):
        assert isinstance(message, DocumentMessage)
        assert message.entities == entities_from_doc(doc)
        assert message.triplets == triplets_from_doc(doc)
        assert message.sentences == sentences_from_doc(doc)


def test_rulers_with_long_patterns_or_operators_are_not_windowed() -> None:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    assert isinstance(ruler, AttributeRuler)
    ruler.add([[{"LOWER": "new"}, {"LOWER": "york"}]], {"POS": "PROPN"})
    assert windowable(ruler)
    ruler.add([[{"LOWER": "a"}, {"LOWER": "b"}, {"LOWER": "c"}]], {"POS": "X"})
    assert not windowable(ruler)

    other = spacy.blank("en").add_pipe("attribute_ruler")
    assert isinstance(other, AttributeRuler)
    other.add([[{"LOWER": "a", "OP": "+"}]], {"POS": "X"})
    assert not windowable(other)


def test_without_a_windowable_ruler_nothing_is_skipped() -> None:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    assert isinstance(ruler, AttributeRuler)
    ruler.add([[{"LOWER": "a"}, {"LOWER": "b"}, {"LOWER": "c"}]], {"POS": "X"})
    lazy = LazyAttributes(nlp)
    assert lazy.skipped == []
    doc = nlp("a b c d")
    assert [t.pos_ for t in doc] == ["X", "", "", ""]  # the ruler ran as a component
    lazy.annotate(doc, range(4))  # and annotate leaves the doc alone
    assert [t.pos_ for t in doc] == ["X", "", "", ""]
