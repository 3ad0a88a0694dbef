"""The output schema every language-model backend must match, its committed copy, the
validation of raw answers, the conversion to events, and the prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from eventpipe.models import Entity, Triplet
from eventpipe.nlp.events import EVENT_TYPES, EventInput
from eventpipe.nlp.llm import InvalidOutput, events_schema, parse_events, schema_file_text
from eventpipe.nlp.llm.base import to_events
from eventpipe.nlp.llm.prompt import MAX_TEXT_CHARS, build_messages, repair_messages

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "events-llm.schema.json"
WRITE = (
    ".venv/bin/python -c 'from eventpipe.nlp.llm import schema_file_text as t; "
    'open("schemas/events-llm.schema.json", "w").write(t())\''
)


def event(**fields: Any) -> dict[str, Any]:
    base = {
        "trigger": "arrested",
        "type": "justice",
        "participants": [{"text": "Police", "role": "agent"}],
        "location": None,
        "time": "Sunday",
    }
    return base | fields


def test_committed_schema_is_the_one_in_code() -> None:
    assert SCHEMA_FILE.read_text() == schema_file_text(), f"out of date; rewrite it: {WRITE}"
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


def test_schema_suits_strict_structured_output() -> None:
    """OpenAI's strict mode wants every property required and no others allowed."""

    def objects(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            found = [node] if node.get("type") == "object" else []
            return found + [o for value in node.values() for o in objects(value)]
        if isinstance(node, list):
            return [o for item in node for o in objects(item)]
        return []

    schema = events_schema()
    assert schema["required"] == ["events"]
    for obj in objects(schema):
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    event_type = schema["$defs"]["LLMEvent"]["properties"]["type"]
    assert event_type["enum"] == list(EVENT_TYPES)


SAMPLES = [
    {"events": []},
    {"events": [event()]},
    {"events": [event(participants=[], location="Lisbon", time=None, type="other")]},
    {"events": [event(type="party")]},
    {"events": [event(trigger="")]},
    {"events": [event(trigger="x" * 61)]},
    {"events": [event(participants=[{"text": "Police", "role": "boss"}])]},
    {"events": [event(participants=[{"text": "Police"}])]},
    {"events": [event(extra=1)]},
    {"events": [event()] * 13},
    {"events": [event(participants=[{"text": "P", "role": "agent"}] * 7)]},
    {"events": [{k: v for k, v in event().items() if k != "time"}]},
    {"events": [event()], "more": True},
    {},
    [],
]


@pytest.mark.parametrize("sample", SAMPLES, ids=range(len(SAMPLES)))
def test_validation_agrees_with_the_schema(sample: Any) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    expected = validator.is_valid(sample)
    try:
        parse_events(json.dumps(sample))
    except InvalidOutput:
        assert not expected
    else:
        assert expected


def test_invalid_output_says_what_is_wrong() -> None:
    with pytest.raises(InvalidOutput, match="not valid JSON") as raised:
        parse_events('{"events": [')
    assert raised.value.output == '{"events": ['
    with pytest.raises(InvalidOutput, match=r"at events\.0\.type: Input should be"):
        parse_events(json.dumps({"events": [event(type="party")]}))
    # A server in json_object mode may fence its JSON.
    assert parse_events("```json\n" + json.dumps({"events": [event()]}) + "\n```").events


def test_events_get_labels_sentences_and_no_repeats() -> None:
    text = "Storm Brenna hit Lisbon. Police arrested Maria Lopez on Sunday."
    at = text.index("Maria Lopez")
    doc = EventInput(
        text=text,
        entities=[Entity(text="Maria Lopez", label="PERSON", start_char=at, end_char=at + 11)],
        triplets=[],
        sentences=[(0, 24), (25, len(text))],
    )
    same = event(participants=[{"text": "Maria Lopez", "role": "patient"}] * 3)
    parsed = parse_events(json.dumps({"events": [same, same, event(trigger="flood")]}))
    arrest, flood = to_events(parsed, doc, "openai")
    assert (arrest.sentence, arrest.source) == (1, "openai")
    assert [(p.text, p.role, p.label) for p in arrest.participants] == [
        ("Maria Lopez", "patient", "PERSON")
    ]
    assert flood.sentence == 0  # not in the text


def test_prompt_has_the_text_and_hints() -> None:
    doc = EventInput(
        text="Police did not arrest two men in Lisbon.",
        entities=[Entity(text="Lisbon", label="GPE", start_char=33, end_char=39)] * 2,
        triplets=[Triplet(subject="Police", action="arrest", object="two men", negated=True)],
        sentences=[],
    )
    system, user = build_messages(doc)
    assert system["role"] == "system" and "justice" in system["content"]
    assert user["content"].startswith("Text:\nPolice did not arrest two men in Lisbon.")
    assert user["content"].count("Lisbon (GPE)") == 1
    assert "Police | not arrest | two men" in user["content"]


def test_prompt_cuts_a_long_text_and_its_hints() -> None:
    text = "word " * 3000
    late = len(text) - 10
    doc = EventInput(
        text=text,
        entities=[
            Entity(text="word", label="ORG", start_char=0, end_char=4),
            Entity(text="late", label="GPE", start_char=late, end_char=late + 4),
        ],
        triplets=[],
        sentences=[],
    )
    user = build_messages(doc)[1]["content"]
    assert len(user) < MAX_TEXT_CHARS + 200
    assert "word word [...]" in user
    assert "word (ORG)" in user and "late (GPE)" not in user


def test_repair_shows_the_answer_and_the_error() -> None:
    messages = build_messages(EventInput("Text.", [], [], []))
    repaired = repair_messages(messages, '{"events": [', "not valid JSON: EOF")
    assert repaired[:2] == messages
    assert repaired[2] == {"role": "assistant", "content": '{"events": ['}
    assert "not valid JSON: EOF" in repaired[3]["content"]
