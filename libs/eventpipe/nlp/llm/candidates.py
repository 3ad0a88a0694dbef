"""The `candidates` way of asking a language model for events: the earlier stages propose,
the model decides. Each event the rules propose (from the DP stage's predicates: content
verbs, event nouns; from triplets in older messages) is a numbered candidate; the model
answers which candidates are events and of what type, as
`{"events": [{"id": 3, "type": "conflict"}, ...]}`.

Why: asked to write whole events, a 135M-parameter model ran past any token budget on real
news (every answer cut off at 256 tokens) and fell back. Here the answer's grammar has only
candidate numbers and type names, so its longest form is known before generating
(`token_budget`): an answer always finishes, and costs ~10 tokens per event. Triggers,
participants, places and times come from the parse, the model's part is the judgement the
rules are worst at: which verbs report events, and of what kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from eventpipe.models import Event
from eventpipe.nlp.events import (
    EVENT_TYPES,
    LIGHT_VERBS,
    EventInput,
    RulesBackend,
    event_type,
    is_reporting,
)
from eventpipe.nlp.llm.prompt import Messages

# Candidates per request: enough for a paragraph or two; a longer document is asked in
# several requests, batched with the others.
MAX_CANDIDATES = 10
# The sentence shown with a candidate, cut around its trigger.
CONTEXT_CHARS = 160
# Participants named beside a candidate: the prompt stays short for a small context.
MAX_ROLES = 3

SYSTEM = (
    "You label candidate events in a news text. Each numbered candidate is a verb or event "
    "noun with the names around it, and the sentence it is in. Keep the candidates that say "
    "something happened or was done (leave out what is denied, only planned or "
    "hypothetical) and give each a type, one of: " + ", ".join(EVENT_TYPES) + ". Use "
    "statement for saying and reporting verbs. Answer with JSON only: "
    '{"events": [{"id": 1, "type": "..."}]}, and {"events": []} when none is an event.'
)


@dataclass(frozen=True)
class Candidate:
    """One proposed event the model may keep: the rules' event, where its trigger starts
    (for the sentence shown) and the (role, text) pairs shown beside it."""

    event: Event
    start_char: int
    roles: tuple[tuple[str, str], ...]


def candidates(doc: EventInput, rules: RulesBackend) -> list[Candidate]:
    """The document's proposed events in text order. With the DP stage's predicates these
    are the rules' predicate events (every asserted content verb, event noun and outcome
    adjective, with the named entities around it); from older messages, every asserted
    triplet with a content verb, typed `other` where the rules find it too weak alone."""
    if doc.predicates:
        return [
            Candidate(event, event.start_char or 0,
                      tuple((p.role, p.text) for p in event.participants[:MAX_ROLES]))
            for event in rules.extract(doc)
        ]
    found: list[Candidate] = []
    for event, t in rules.events_with_triplets(doc, keep_weak=True):
        if t.action.split(" ")[0] in LIGHT_VERBS and event_type(t.action) is None:
            continue
        roles = [("subject", t.subject)]
        if t.object or t.agent:
            roles.append(("object", t.object or t.agent or ""))
        found.append(Candidate(event, t.start_char, tuple(roles)))
    return found


def requests_for(doc: EventInput, found: list[Candidate]) -> list[tuple[Messages, int]]:
    """The requests for one document's candidates, MAX_CANDIDATES at a time, each with the
    number of candidates it holds."""
    out = []
    for start in range(0, len(found), MAX_CANDIDATES):
        chunk = found[start : start + MAX_CANDIDATES]
        lines = [_line(n, doc, c) for n, c in enumerate(chunk, start=1)]
        user = "Candidates:\n" + "\n".join(lines)
        out.append(([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                    len(chunk)))
    return out


def _line(n: int, doc: EventInput, c: Candidate) -> str:
    parts = [f"{n}. {c.event.trigger}", *(f"{role}: {text}" for role, text in c.roles)]
    return " | ".join(parts) + f' | "{_context(doc, c)}"'


def _context(doc: EventInput, c: Candidate) -> str:
    sentence = c.event.sentence
    start, end = doc.sentences[sentence] if sentence < len(doc.sentences) else (0, len(doc.text))
    if end - start > CONTEXT_CHARS:
        # A window around the trigger, so long sentences keep what matters to this candidate.
        half = CONTEXT_CHARS // 2
        start = max(start, min(c.start_char - half, end - CONTEXT_CHARS))
        end = min(end, start + CONTEXT_CHARS)
    return " ".join(doc.text[start:end].split()).replace('"', "'")


def answer_schema(count: int) -> dict[str, Any]:
    """The JSON Schema of an answer about `count` candidates."""
    return {
        "type": "object",
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer", "enum": list(range(1, count + 1))},
                        "type": {"type": "string", "enum": list(EVENT_TYPES)},
                    },
                    "required": ["id", "type"],
                    "additionalProperties": False,
                },
                "maxItems": count,
            }
        },
        "required": ["events"],
        "additionalProperties": False,
    }


def token_budget(count: int) -> int:
    """Tokens enough for the longest answer the schema allows (one token per character at
    worst), plus the end-of-turn token: an answer cannot be cut off."""
    longest_type = max(len(name) for name in EVENT_TYPES)
    item = len('{"id":,"type":""}') + len(str(count)) + longest_type
    return len('{"events":[]}') + count * (item + 1) + 1


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    type: str


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[_Item]


def parse_answer(raw: str, chunk: list[Candidate], source: str) -> list[Event]:
    """The events an answer keeps, typed as it says, in text order; ValueError says what is
    wrong."""
    text = raw.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text.strip("`").split("\n", 1)[-1]
    try:
        answer = _Answer.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"not a valid answer: {exc.errors()[0]['msg']}") from None
    kept: dict[int, str] = {}
    for item in answer.events:
        if not 1 <= item.id <= len(chunk):
            raise ValueError(f"candidate {item.id} does not exist (1-{len(chunk)})")
        if item.type not in EVENT_TYPES:
            raise ValueError(f"unknown type {item.type!r}")
        # Small models under greedy decoding repeat an item: the first one counts.
        kept.setdefault(item.id, item.type)
    return [
        chunk[n - 1].event.model_copy(
            update={"type": kind, "source": source, "reporting": is_reporting(kind)})
        for n, kind in sorted(kept.items())
    ]
