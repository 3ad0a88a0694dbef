"""Event candidates from the parse and the rules events built on them: verbal and nominal
triggers, reporting verbs marked, offsets, participants as keyed entity spans."""

from __future__ import annotations

from spacy.language import Language

from eventpipe.models import Event
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.events import EventInput, RulesBackend, noun_type
from eventpipe.nlp.keys import entity_key
from eventpipe.nlp.predicates import predicates_from_doc
from eventpipe.nlp.triplets import triplets_from_doc


def events_of(nlp: Language, text: str) -> list[Event]:
    doc = nlp(text)
    analysis = EventInput(text, entities_from_doc(doc), triplets_from_doc(doc),
                          sentences_from_doc(doc), predicates_from_doc(doc))
    return RulesBackend().extract(analysis)


def test_verbs_that_are_not_triplet_roots_and_event_nouns(nlp: Language) -> None:
    text = ("Rescue teams pulled survivors from collapsed buildings in Izmir. "
            "The death toll from the Izmir earthquake rose to 85.")
    events = {e.trigger: e for e in events_of(nlp, text)}
    assert {"pulled", "death", "earthquake", "rose"} <= set(events)
    assert events["earthquake"].type == "disaster" and events["earthquake"].lemma == "earthquake"
    for e in events.values():  # offsets of the trigger and of its sentence
        assert e.start_char is not None and e.end_char is not None
        assert text[e.start_char:e.end_char] == e.trigger
        assert e.sentence_start is not None and e.sentence_end is not None
        assert e.sentence_start <= e.start_char < e.end_char <= e.sentence_end
    assert events["earthquake"].sentence == 1
    assert events["earthquake"].sentence_start == text.index("The death")


def test_auxiliaries_and_negated_verbs_are_no_events(nlp: Language) -> None:
    events = events_of(nlp, "The suspect has been arrested. He did not escape.")
    assert [e.trigger for e in events] == ["arrested"]
    assert events[0].type == "justice"


def test_reporting_verbs_are_marked(nlp: Language) -> None:
    events = events_of(nlp, "Police said the gunman was killed.")
    said = next(e for e in events if e.trigger == "said")
    killed = next(e for e in events if e.trigger == "killed")
    assert said.reporting and said.type == "statement"
    assert not killed.reporting and killed.type == "conflict"


def test_participants_are_keyed_entity_spans_with_roles(nlp: Language) -> None:
    text = "Vodafone agreed to buy Three UK. Vodafone's chief Margherita Della Valle spoke."
    events = events_of(nlp, text)
    buy = next(e for e in events if e.lemma == "buy")
    roles = {p.text: (p.role, p.key) for p in buy.participants}
    assert roles["Vodafone"] == ("agent", "vodafone")
    for p in buy.participants:
        assert p.start_char is not None and text[p.start_char:p.end_char] == p.text
    spoke = next(e for e in events if e.lemma == "speak")
    assert {p.key for p in spoke.participants} >= {"vodafone", "valle"}


def test_entity_keys() -> None:
    assert entity_key("Vodafone's", "ORG") == entity_key("VODAFONE", "ORG") == "vodafone"
    assert entity_key("Lindsay Lohan", "PERSON") == entity_key("Lohan", "PERSON") == "lohan"
    assert entity_key("Dr. Conrad Murray Jr.", "PERSON") == "murray"
    assert entity_key("the U.S.", "GPE") == entity_key("America", "GPE") == "united states"
    assert entity_key("She", "PERSON") is None and entity_key("it") is None
    assert entity_key("2009", "DATE") is None


def test_noun_types() -> None:
    assert noun_type("takeover") == "acquisition"
    assert noun_type("shooting") == "conflict"  # a gerund takes its verb's type
    assert noun_type("arrest") == "justice"
    assert noun_type("table") is None
