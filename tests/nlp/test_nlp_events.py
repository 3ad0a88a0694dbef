"""The events backends: the interface, the registry and the deterministic rules."""

from __future__ import annotations

import pytest
from spacy.language import Language

from eventpipe.models import Entity, Event, Participant, Triplet
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.events import (
    TRIGGERS,
    EventBackend,
    EventInput,
    RulesBackend,
    event_type,
    get_backend,
)
from eventpipe.nlp.triplets import triplets_from_doc


def entity(text: str, label: str, start: int) -> Entity:
    return Entity(text=text, label=label, start_char=start, end_char=start + len(text))


def analyse(nlp: Language, text: str) -> EventInput:
    doc = nlp(text)
    return EventInput(
        text=text,
        entities=entities_from_doc(doc),
        triplets=triplets_from_doc(doc),
        sentences=sentences_from_doc(doc),
    )


def events_of(nlp: Language, text: str) -> list[Event]:
    return RulesBackend().extract_batch([analyse(nlp, text)])[0]


def test_registry() -> None:
    backend: EventBackend = get_backend("rules")
    assert backend.name == "rules"
    assert isinstance(backend, RulesBackend)
    with pytest.raises(ValueError, match=r"unknown events backend 'gpt'.*known backends: rules"):
        get_backend("gpt")


def test_trigger_lexicon() -> None:
    assert event_type("acquire") == "acquisition"
    assert event_type("take over") == "acquisition"
    assert event_type("arrest") == "justice"
    assert event_type("say") == "statement"
    assert event_type("swear in") is None
    assert event_type("be") is None
    assert all(lemma == lemma.strip().lower() and lemma for lemma in TRIGGERS)


def test_acquisition_with_place_and_time(nlp: Language) -> None:
    (event,) = events_of(nlp, "Apple acquired Beats Electronics in Cupertino on Tuesday.")
    assert event == Event(
        trigger="acquired",
        type="acquisition",
        participants=[
            Participant(text="Apple", role="agent", label="ORG"),
            Participant(text="Beats Electronics", role="patient", label="ORG"),
        ],
        location="Cupertino",
        time="Tuesday",
        sentence=0,
        source="rules",
    )


def test_passive_roles_and_agent(nlp: Language) -> None:
    text = "Maria Lopez visited Berlin. The suspect was arrested by police in Chicago on Monday."
    visit, arrest = events_of(nlp, text)
    assert (visit.type, visit.sentence, visit.location) == ("meeting", 0, "Berlin")
    assert visit.participants == [
        Participant(text="Maria Lopez", role="agent", label="PERSON"),
        Participant(text="Berlin", role="theme", label="GPE"),
    ]
    assert (arrest.trigger, arrest.type, arrest.sentence) == ("arrested", "justice", 1)
    assert [(p.text, p.role, p.label) for p in arrest.participants] == [
        ("The suspect", "patient", None),
        ("police in Chicago", "agent", None),  # a place inside is not the phrase's label
    ]
    assert (arrest.location, arrest.time) == ("Chicago", "Monday")


def test_statement_and_title_before_a_name(nlp: Language) -> None:
    (event,) = events_of(nlp, "Chief executive Anna Kowalski announced the results.")
    assert event.type == "statement"
    assert event.participants[0] == Participant(
        text="Chief executive Anna Kowalski", role="agent", label="PERSON"
    )


def test_negated_triplets_give_no_event(nlp: Language) -> None:
    assert events_of(nlp, "The minister did not sign the agreement.") == []


def test_entity_without_trigger_is_other_and_plain_clauses_are_skipped() -> None:
    text = "Norvale Systems painted its offices. The weather was nice."
    doc = EventInput(
        text=text,
        entities=[entity("Norvale Systems", "ORG", 0)],
        triplets=[
            Triplet(
                subject="Norvale Systems",
                action="paint",
                object="its offices",
                start_char=16,
                end_char=23,
            ),
            Triplet(
                subject="The weather",
                action="be",
                object="nice",
                sentence=1,
                start_char=49,
                end_char=52,
            ),
        ],
        sentences=[(0, 36), (37, 62)],
    )
    (event,) = RulesBackend().extract(doc)
    assert (event.trigger, event.type) == ("painted", "other")
    assert event.participants[0].label == "ORG"


def test_entities_of_other_sentences_are_ignored() -> None:
    text = "Police arrested two men. Lisbon was calm on Sunday."
    doc = EventInput(
        text=text,
        entities=[entity("Lisbon", "GPE", 25), entity("Sunday", "DATE", 43)],
        triplets=[
            Triplet(subject="Police", action="arrest", object="two men", start_char=7, end_char=15)
        ],
        sentences=[(0, 24), (25, 51)],
    )
    (event,) = RulesBackend().extract(doc)
    assert (event.location, event.time) == (None, None)


def test_batch_keeps_order_and_is_deterministic(nlp: Language) -> None:
    inputs = [
        analyse(nlp, "Storm Brenna hit Lisbon on Monday."),
        analyse(nlp, ""),
        analyse(nlp, "The board of Kestrel Bank approved the merger with Orion Capital."),
    ]
    first = get_backend("rules").extract_batch(inputs)
    assert [[e.type for e in events] for events in first] == [
        ["disaster"],
        [],
        ["agreement"],
    ]
    assert get_backend("rules").extract_batch(inputs) == first


def test_every_registered_backend_names_a_factory() -> None:
    # The registry is text: each entry must lead to a function, not a module or nothing.
    import importlib
    import inspect

    from eventpipe.nlp.events import BACKENDS

    for name, target in BACKENDS.items():
        module, _, factory = target.partition(":")
        made = getattr(importlib.import_module(module), factory)
        assert inspect.isfunction(made), name
