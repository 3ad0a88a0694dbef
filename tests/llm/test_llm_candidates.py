"""The `candidates` prompt: the parse proposes (numbered triplets), the model keeps and types;
answers are bounded by a schema whose longest form fits the token budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from llm_helpers import FakeModelServer

from eventpipe.models import Entity, Predicate, Triplet
from eventpipe.nlp.events import EVENT_TYPES, EventInput, EventsResult, RulesBackend
from eventpipe.nlp.llm import LLMBackend
from eventpipe.nlp.llm import candidates as cand
from eventpipe.nlp.llm.openai_backend import OpenAIGenerator

TEXT = "Police arrested two men in Lisbon. The mayor said the city was calm. Rain fell."
SENTENCES = [(0, 34), (35, 68), (69, len(TEXT))]


def at(word: str) -> dict[str, int]:
    start = TEXT.index(word)
    return {"start_char": start, "end_char": start + len(word)}


DOC = EventInput(
    TEXT,
    [Entity(text="Lisbon", label="GPE", **at("Lisbon"))],
    [
        Triplet(subject="Police", action="arrest", object="two men", **at("arrested")),
        Triplet(subject="The mayor", action="say", sentence=1, **at("said")),
        Triplet(subject="Rain", action="fall", sentence=2, **at("fell")),
        Triplet(subject="He", action="sign", negated=True, sentence=2, **at("fell")),
    ],
    SENTENCES,
)


def test_candidates_are_the_asserted_triplets_in_text_order() -> None:
    found = cand.candidates(DOC, RulesBackend())
    # The negated one is no candidate; "fall" is too weak for the rules alone, but a candidate.
    assert [c.event.trigger for c in found] == ["arrested", "said", "fell"]
    assert [c.event.type for c in found] == ["justice", "statement", "other"]


PREDICATE_DOC = EventInput(
    DOC.text,
    DOC.entities,
    DOC.triplets,
    SENTENCES,
    [
        Predicate(lemma="arrest", kind="verb", **at("arrested")),
        Predicate(lemma="say", kind="verb", sentence=1, **at("said")),
        Predicate(lemma="be", kind="verb", sentence=1, **at("was")),
        Predicate(lemma="rain", kind="noun", sentence=2, **at("Rain")),
        Predicate(lemma="fall", kind="verb", sentence=2, negated=True, **at("fell")),
    ],
)


def test_with_predicates_the_candidates_are_the_rules_predicate_events() -> None:
    found = cand.candidates(PREDICATE_DOC, RulesBackend())
    # The light verb and the negated one are no candidates; the event noun is one.
    assert [c.event.trigger for c in found] == ["arrested", "said", "Rain"]
    assert [c.event for c in found] == RulesBackend().extract(PREDICATE_DOC)
    assert found[0].roles == (("location", "Lisbon"),)
    ((messages, count),) = cand.requests_for(PREDICATE_DOC, found)
    assert count == 3
    assert '1. arrested | location: Lisbon | "Police arrested two men in Lisbon."' in (
        messages[1]["content"])
    # Typed by the model as a statement, an event is marked as reporting.
    events = cand.parse_answer('{"events": [{"id": 1, "type": "statement"}]}', found, "x")
    assert (events[0].type, events[0].reporting) == ("statement", True)


def test_the_budget_covers_the_longest_answer_the_schema_allows() -> None:
    for count in (1, 7, cand.MAX_CANDIDATES):
        longest = max(EVENT_TYPES, key=len)
        answer = {"events": [{"id": count, "type": longest}] * count}
        text = json.dumps(answer, separators=(",", ":"))
        assert len(text) < cand.token_budget(count)
        assert cand.answer_schema(count)["properties"]["events"]["maxItems"] == count


def test_parse_keeps_what_the_model_chose_typed_as_it_said() -> None:
    found = cand.candidates(DOC, RulesBackend())
    raw = '{"events": [{"id": 3, "type": "disaster"}, {"id": 1, "type": "justice"},' \
          ' {"id": 1, "type": "conflict"}]}'
    events = cand.parse_answer(raw, found, "openai")
    assert [(e.trigger, e.type, e.source) for e in events] == [
        ("arrested", "justice", "openai"),  # the first answer for a candidate counts
        ("fell", "disaster", "openai"),
    ]
    assert events[0].participants == found[0].event.participants
    assert events[0].location == "Lisbon"
    with pytest.raises(ValueError, match="candidate 4 does not exist"):
        cand.parse_answer('{"events": [{"id": 4, "type": "other"}]}', found, "openai")
    with pytest.raises(ValueError, match="unknown type"):
        cand.parse_answer('{"events": [{"id": 1, "type": "party"}]}', found, "openai")


def long_document(n: int) -> EventInput:
    sentences, triplets, parts = [], [], []
    at = 0
    for i in range(n):
        sentence = f"Rebels attacked village {i}."
        parts.append(sentence)
        sentences.append((at, at + len(sentence)))
        triplets.append(Triplet(subject="Rebels", action="attack", object=f"village {i}",
                                sentence=i, start_char=at + 7, end_char=at + 15))
        at += len(sentence) + 1
    return EventInput(" ".join(parts), [], triplets, sentences)


def test_a_long_document_is_asked_in_bounded_requests_and_answers_come_back_in_order(
    fake_server: Callable[..., FakeModelServer],
) -> None:
    def answer(body: dict[str, Any]) -> str:
        count = body["response_format"]["json_schema"]["schema"]["properties"]["events"][
            "maxItems"]
        assert body["max_tokens"] == cand.token_budget(count)
        # Keep every other candidate.
        return json.dumps({"events": [{"id": i, "type": "conflict"}
                                      for i in range(1, count + 1, 2)]})

    server = fake_server(answer)
    doc = long_document(cand.MAX_CANDIDATES + 5)
    backend = LLMBackend(OpenAIGenerator(server.url, "fake"))
    try:
        (result, empty) = backend.extract_results([doc, EventInput("Nothing.", [], [], [])])
    finally:
        backend.close()
    assert isinstance(result, EventsResult) and isinstance(empty, EventsResult)
    assert (result.backend, result.fallback) == ("openai", None)
    kept = [int(e.participants[1].text.split()[1]) for e in result.events]
    first = list(range(0, cand.MAX_CANDIDATES, 2))
    second = [cand.MAX_CANDIDATES + i for i in range(0, 5, 2)]
    assert kept == first + second
    # A document without candidates costs no request and has no events from anyone.
    assert (empty.events, empty.backend, empty.fallback) == ([], "openai", None)
    assert len(server.requests) == 2


def test_an_invalid_answer_is_retried_with_the_error_then_falls_back(
    fake_server: Callable[..., FakeModelServer],
) -> None:
    server = fake_server(lambda body: '{"events": [{"id": 9, "type": "other"}]}')
    backend = LLMBackend(OpenAIGenerator(server.url, "fake"))
    try:
        (result,) = backend.extract_results([DOC])
    finally:
        backend.close()
    assert isinstance(result, EventsResult)
    assert result.backend == "rules"
    assert result.fallback == (
        "openai: invalid output after a retry: candidate 9 does not exist (1-3)"
    )
    assert result.events == RulesBackend().extract(DOC)
    assert len(server.requests) == 2
    assert "candidate 9 does not exist" in server.requests[1]["messages"][-1]["content"]
