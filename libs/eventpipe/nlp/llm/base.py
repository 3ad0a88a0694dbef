"""What every language-model backend shares: the output schema, the `Generator` interface
(chat messages and a JSON Schema in, raw text out) and `LLMBackend`, which prompts a
generator, validates what comes back, retries invalid output once with the error, and
gives a document that still has none the `rules` events with the reason recorded."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eventpipe.errors import BackendError as BackendError
from eventpipe.errors import BackendUnreachable as BackendUnreachable
from eventpipe.errors import InvalidOutput as InvalidOutput
from eventpipe.errors import OverBudget as OverBudget
from eventpipe.models import Event, Participant
from eventpipe.nlp.events import (
    EVENT_TYPES,
    EventInput,
    EventsOutcome,
    EventsResult,
    RulesBackend,
    labeller,
    sentence_of,
)
from eventpipe.nlp.llm import candidates as cand
from eventpipe.nlp.llm.cache import ResponseCache, cache_key
from eventpipe.nlp.llm.prompt import Messages, build_messages, repair_messages

log = logging.getLogger(__name__)

SCHEMA_NAME = "events"

# Every string and list is bounded: a small model that repeats itself stops at the bound
# rather than at the token budget, and constrained decoding can always close the JSON.
Text = Annotated[str, Field(min_length=1, max_length=100)]
Short = Annotated[str, Field(min_length=1, max_length=60)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Role = Literal["agent", "patient", "theme", "recipient", "other"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMParticipant(_Strict):
    text: Text
    role: Role


class LLMEvent(_Strict):
    # No defaults: strict structured output wants every property required.
    trigger: Short
    type: EventType
    participants: list[LLMParticipant] = Field(max_length=6)
    location: Short | None
    time: Short | None


class LLMEvents(_Strict):
    events: list[LLMEvent] = Field(max_length=12)


@cache
def _schema() -> str:
    schema = LLMEvents.model_json_schema()
    return json.dumps(_without_titles(schema))


def events_schema() -> dict[str, Any]:
    """The JSON Schema every backend's output must match (a fresh copy)."""
    loaded: dict[str, Any] = json.loads(_schema())
    return loaded


def schema_file_text() -> str:
    """What `schemas/events-llm.schema.json` holds."""
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "What a language-model backend of the events stage must answer",
    } | events_schema()
    return json.dumps(document, indent=2) + "\n"


def _without_titles(node: Any) -> Any:
    """Pydantic's generated titles only cost prompt tokens and grammar size."""
    if isinstance(node, dict):
        return {
            key: (
                {name: _without_titles(sub) for name, sub in value.items()}
                if key == "properties"
                else _without_titles(value)
            )
            for key, value in node.items()
            if key != "title"
        }
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    return node


class Generator(Protocol):
    name: str

    def generate(
        self,
        requests: Sequence[Messages],
        schema: dict[str, Any],
        max_tokens: int | None = None,
    ) -> list[str | Exception]:
        """One answer per request, in order: the raw text; `InvalidOutput` when the answer
        is unusable (cut off); or the exception that fails that request's document. Raising
        fails every document of the call. `max_tokens` overrides the configured budget
        (the candidates prompt knows its answer's longest form)."""
        ...

    def close(self) -> None: ...

    def release(self) -> None:
        """Give back what the generator holds that it can load again (a local model's
        weights); called while the stage is idle. May do nothing."""
        ...


def parse_events(raw: str) -> LLMEvents:
    """The validated events of a raw answer; InvalidOutput says what is wrong otherwise."""
    text = _unfenced(raw.strip())
    try:
        return LLMEvents.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "json_invalid":
            reason = f"not valid JSON: {error['msg']}"
        else:
            reason = f"does not match the schema at {where or 'the top'}: {error['msg']}"
        raise InvalidOutput(reason, raw) from None


def _unfenced(text: str) -> str:
    """Without the Markdown code fence some servers put around JSON in json_object mode."""
    if text.startswith("```") and text.endswith("```"):
        body = text[3:-3]
        return body.split("\n", 1)[1] if "\n" in body else body
    return text


def to_events(parsed: LLMEvents, doc: EventInput, source: str) -> list[Event]:
    """Our events from a model's: participants get the label of the entity they name, and
    an event the sentence where its trigger first occurs (0 when it does not). Repeats are
    dropped: small models under greedy decoding tend to list one thing again and again."""
    label = labeller(doc.entities)
    lowered = doc.text.lower()
    events: list[Event] = []
    for item in parsed.events:
        at = lowered.find(item.trigger.lower())
        participants = {
            (p.text, p.role): Participant(text=p.text, role=p.role, label=label(p.text))
            for p in item.participants
        }
        event = Event(
            trigger=item.trigger,
            type=item.type,
            participants=list(participants.values()),
            location=item.location,
            time=item.time,
            sentence=sentence_of(doc, at) if at >= 0 else 0,
            source=source,
        )
        if event not in events:
            events.append(event)
    return events


PromptMode = Literal["candidates", "open"]


class LLMBackend:
    """An `EventBackend` over a generator: validation, one retry and the rules fallback; with
    a response cache, a request answered before (validly) is not sent again.

    `prompt` is how the model is asked: `candidates` (the default: the model keeps and types
    the triplets the parse found, an answer that always fits its budget; see
    `candidates.py`) or `open` (the model writes whole events from the text)."""

    def __init__(
        self,
        generator: Generator,
        cache: ResponseCache | None = None,
        prompt: PromptMode = "candidates",
    ) -> None:
        self.generator = generator
        self.name = generator.name
        self.identity = str(getattr(generator, "identity", generator.name))
        self.cache = cache
        self.prompt = prompt
        self.rules = RulesBackend()

    def extract_results(self, docs: Sequence[EventInput]) -> list[EventsOutcome]:
        if self.prompt == "candidates":
            return self._candidate_results(docs)
        requests = [build_messages(doc) for doc in docs]
        schema = events_schema()
        keys = [cache_key(self.identity, r, schema) for r in requests] if self.cache else []
        cached = [self.cache.get(k) for k in keys] if self.cache else [None] * len(requests)
        todo = [i for i, hit in enumerate(cached) if hit is None]
        fresh = iter(self._generate([requests[i] for i in todo]) if todo else [])
        answers: list[str | Exception] = [
            hit if hit is not None else next(fresh) for hit in cached]
        outcomes = [self._check(raw, doc) for raw, doc in zip(answers, docs, strict=True)]
        invalid = {
            i: out
            for i, out in enumerate(outcomes)
            if isinstance(out, InvalidOutput) and not isinstance(out, OverBudget)
        }
        if invalid:
            # The error goes back to the model: a greedy decoder given the same prompt
            # would only repeat itself.
            repairs = [
                repair_messages(requests[i], out.output, str(out)) for i, out in invalid.items()
            ]
            for i, raw in zip(invalid, self._generate(repairs), strict=True):
                outcomes[i] = self._check(raw, docs[i])
                answers[i] = raw
        if self.cache is not None:
            for i in todo:  # valid answers only, under the first request's key
                raw = answers[i]
                if isinstance(outcomes[i], EventsResult) and isinstance(raw, str):
                    self.cache.put(keys[i], raw)
        return [self._settle(outcome, doc) for outcome, doc in zip(outcomes, docs, strict=True)]

    def close(self) -> None:
        self.generator.close()
        if self.cache is not None:
            self.cache.close()

    def release(self) -> None:
        self.generator.release()

    def _candidate_results(self, docs: Sequence[EventInput]) -> list[EventsOutcome]:
        found = [cand.candidates(doc, self.rules) for doc in docs]
        # (document, first candidate's index, messages, candidates) per request.
        asks: list[tuple[int, int, Messages, int]] = []
        for d, (doc, cands) in enumerate(zip(docs, found, strict=True)):
            first = 0
            for messages, count in cand.requests_for(doc, cands):
                asks.append((d, first, messages, count))
                first += count
        answered: dict[int, list[Event]] = {}
        problems: list[Exception | None] = [None] * len(docs)
        # Valid answers are cached under the first request's key (as for open answers).
        keys = [cache_key(self.identity, m, cand.answer_schema(c)) for _, _, m, c in asks]
        hits = {i: hit for i, key in enumerate(keys) if (hit := self._cached(key)) is not None}
        pending = [i for i in range(len(asks)) if i not in hits]
        for attempt in range(2):
            answers = dict(zip(pending, self._ask_candidates([asks[i] for i in pending]),
                               strict=True))
            if attempt == 0:
                answers |= hits
            retry = []
            for i, raw in sorted(answers.items()):
                d, first, messages, count = asks[i]
                chunk = found[d][first : first + count]
                try:
                    if isinstance(raw, Exception):
                        raise raw
                    answered[i] = cand.parse_answer(raw, chunk, self.name)
                    if self.cache is not None and i not in hits:
                        self.cache.put(keys[i], raw)
                except (ValueError, InvalidOutput) as exc:
                    if attempt == 0 and not isinstance(exc, OverBudget):
                        # The error goes back to the model, as for open answers.
                        bad = raw.output if isinstance(raw, InvalidOutput) else str(raw)
                        asks[i] = (d, first, repair_messages(messages, bad, str(exc)), count)
                        retry.append(i)
                    else:
                        invalid = exc if isinstance(exc, InvalidOutput) else InvalidOutput(str(exc))
                        problems[d] = problems[d] or invalid
                except Exception as exc:
                    problems[d] = exc
            pending = retry
            if not pending:
                break
        outcomes: list[EventsOutcome] = []
        for d, doc in enumerate(docs):
            problem = problems[d]
            if problem is None:
                # Requests were made in text order; retries answered later.
                events = [e for i in sorted(answered) if asks[i][0] == d for e in answered[i]]
                outcomes.append(EventsResult(events, self.name))
            elif isinstance(problem, InvalidOutput):
                outcomes.append(self._settle(problem, doc))
            else:
                outcomes.append(problem)
        return outcomes

    def _cached(self, key: str) -> str | None:
        return self.cache.get(key) if self.cache is not None else None

    def _ask_candidates(self, asks: list[tuple[int, int, Messages, int]]) -> list[str | Exception]:
        """Answers in the order of `asks`; requests with the same number of candidates share
        a schema and so a call."""
        answers: list[str | Exception] = [BackendError("not asked")] * len(asks)
        by_count: dict[int, list[int]] = {}
        for i, (_, _, _, count) in enumerate(asks):
            by_count.setdefault(count, []).append(i)
        for count, members in sorted(by_count.items()):
            got = self._generate(
                [asks[i][2] for i in members],
                cand.answer_schema(count),
                cand.token_budget(count),
            )
            for i, raw in zip(members, got, strict=True):
                answers[i] = raw
        return answers

    def _generate(
        self,
        requests: list[Messages],
        schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> list[str | Exception]:
        if not requests:
            return []
        try:
            answers = self.generator.generate(
                requests, schema or events_schema(), max_tokens=max_tokens
            )
            if len(answers) != len(requests):
                raise BackendError(
                    f"{self.name} gave {len(answers)} answers to {len(requests)} requests"
                )
        except Exception as exc:
            # A failure of the whole call fails its documents, not the stage.
            log.warning("events backend failed", extra={"backend": self.name, "error": str(exc)})
            return [exc] * len(requests)
        return answers

    def _check(self, raw: str | Exception, doc: EventInput) -> EventsOutcome | InvalidOutput:
        if isinstance(raw, Exception):
            return raw
        try:
            parsed = parse_events(raw)
        except InvalidOutput as exc:
            return exc
        return EventsResult(to_events(parsed, doc, self.name), self.name)

    def _settle(self, outcome: EventsOutcome | InvalidOutput, doc: EventInput) -> EventsOutcome:
        if not isinstance(outcome, InvalidOutput):
            return outcome
        if isinstance(outcome, OverBudget):
            reason = f"{self.name}: {outcome}"
        else:
            reason = f"{self.name}: invalid output after a retry: {outcome}"[:500]
        log.warning("events fell back to rules", extra={"reason": reason})
        return EventsResult(self.rules.extract(doc), self.rules.name, fallback=reason)
