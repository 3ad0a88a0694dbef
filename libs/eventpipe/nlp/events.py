"""The events stage's backends: turn a document's entities and triplets into events.

A backend is anything with a `name` and `extract_results`, which gives each document either
its events (and which backend made them) or the exception that fails it; `build_backend`
makes the configured one. The default, `RulesBackend`, is deterministic: a trigger lexicon
over the triplets' action lemmas plus the entities of the same sentence. The language-model
backends live in `eventpipe.nlp.llm` and fall back to it; `BACKENDS` names them all.
"""

from __future__ import annotations

import bisect
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eventpipe.models import Entity, Event, Participant, Predicate, Triplet
from eventpipe.nlp.keys import entity_key
from eventpipe.settings import Settings, get_settings

# Event type -> trigger lemmas (comma-separated, as some are phrasal: "take over").
_TYPES: dict[str, str] = {
    "acquisition": "acquire, buy, purchase, sell, merge, take over, divest, bid",
    "conflict": "attack, kill, bomb, fight, invade, shell, strike, wound, injure, shoot, clash, "
    "destroy",
    "meeting": "meet, visit, host, welcome, receive, hold talks",
    "statement": "say, announce, report, tell, warn, claim, state, declare, deny, confirm, "
    "insist, add, urge, criticize, praise",
    "justice": "arrest, charge, sentence, sue, convict, detain, indict, acquit, fine, jail, "
    "release, extradite, investigate, raid",
    "election": "elect, vote, re-elect, nominate, campaign, defeat, win",
    "agreement": "sign, agree, approve, ratify, endorse, reach, renew",
    "movement": "travel, move, arrive, leave, fly, return, evacuate, flee, relocate",
    "business": "launch, invest, hire, earn, post, raise, expand, cut, lay off, open, close, "
    "unveil, fund",
    "disaster": "hit, flood, damage, batter, devastate, strand",
    "personnel": "appoint, resign, name, fire, promote, replace, retire",
    "sports": "beat, score, lose, draw, qualify, defend",
}
# Event nouns (see eventpipe.nlp.predicates) by type; gerunds take their verb's type.
_NOUN_TYPES: dict[str, str] = {
    "acquisition": "acquisition, merger, takeover, purchase, sale, bid, deal, transaction",
    "conflict": "attack, airstrike, ambush, assault, battle, blast, bombing, clash, conflict, "
    "explosion, fight, firing, invasion, killing, massacre, murder, offensive, raid, shooting, "
    "shootout, siege, slaying, stabbing, war, assassination, riot",
    "meeting": "meeting, summit, talk, conference, visit, negotiation",
    "justice": "arrest, charge, trial, verdict, sentence, conviction, indictment, detention, "
    "extradition, lawsuit, hearing, investigation, execution, appeal, seizure",
    "election": "election, vote, campaign, inauguration",
    "agreement": "agreement, settlement, ceasefire",
    "disaster": "earthquake, quake, tremor, tsunami, flood, flooding, storm, hurricane, "
    "tornado, typhoon, landslide, eruption, fire, blaze, crash, collision, accident, wreck, "
    "collapse, outage, disaster",
    "business": "launch, release, layoff, expansion, recall, closure, auction",
    "personnel": "resignation, appointment, retirement, dismissal, departure",
    "sports": "game, match, victory, win, defeat",
}
NOUN_TRIGGERS: dict[str, str] = {
    noun: kind for kind, nouns in _NOUN_TYPES.items() for noun in nouns.split(", ")
}
EVENT_TYPES: tuple[str, ...] = (*_TYPES, "other")
TRIGGERS: dict[str, str] = {
    lemma: kind for kind, lemmas in _TYPES.items() for lemma in lemmas.split(", ")
}
# Verbs too general to make an event of on their own, even next to a named entity.
LIGHT_VERBS = frozenset({"be", "have", "do", "become", "seem", "get", "make"})
# Roles of a direct object by event type; other types call it the theme.
_PATIENT_TYPES = frozenset({"acquisition", "conflict", "justice", "disaster", "personnel"})
LOCATION_LABELS = frozenset({"GPE", "LOC", "FAC"})
# Labels of names, as opposed to numbers, amounts and dates.
NAMED_LABELS = frozenset(
    {"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}
)
TIME_LABELS = frozenset({"DATE", "TIME"})


@dataclass(frozen=True)
class EventInput:
    """What the events stage knows of one document."""

    text: str
    entities: list[Entity]
    triplets: list[Triplet]
    sentences: list[tuple[int, int]]
    # From the DP stage; without them (older messages) the rules read triplets only.
    predicates: Sequence[Predicate] = ()


@dataclass(frozen=True)
class EventsResult:
    """A document's events, the backend that made them and, when that is the `rules`
    fallback of another backend, why."""

    events: list[Event]
    backend: str
    fallback: str | None = None


def fallback_kind(reason: str | None) -> str:
    """A fallback reason without its details ("transformers: over the time budget"), to count
    reasons by kind; "" for no fallback."""
    if not reason:
        return ""
    return reason.split(" (", 1)[0].split(": ", 2)[-1][:80] if ": " in reason else reason[:80]


# Per document: its events, or the exception that fails that document alone.
EventsOutcome = EventsResult | Exception


class EventBackend(Protocol):
    name: str

    def extract_results(self, docs: Sequence[EventInput]) -> list[EventsOutcome]:
        """One outcome per document, in the order of `docs`. Never raises for one bad
        document: its outcome is the exception."""
        ...


def event_type(action: str) -> str | None:
    """The lexicon's type for an action ("take over", "sell"), or None."""
    return TRIGGERS.get(action) or TRIGGERS.get(action.split(" ", 1)[0])


def noun_type(noun: str) -> str | None:
    """The type of an event noun ("earthquake"), of a gerund by its verb ("shooting")."""
    if noun in NOUN_TRIGGERS:
        return NOUN_TRIGGERS[noun]
    if noun.endswith("ing"):
        stem = noun[:-3]
        for verb in (stem, stem + "e", stem[:-1]):
            if verb in TRIGGERS:
                return TRIGGERS[verb]
    return None


def is_reporting(kind: str | None) -> bool:
    """Reporting verbs (say, announce, tell) carry a `statement` event that says someone
    spoke, not what happened."""
    return kind == "statement"


class RulesBackend:
    """One event per asserted triplet whose action is a known trigger or whose subject,
    object or agent names an entity. Negated triplets ("did not sign") report
    something that did not happen and give no event."""

    name: str = "rules"

    def extract_results(self, docs: Sequence[EventInput]) -> list[EventsOutcome]:
        return [EventsResult(events, self.name) for events in self.extract_batch(docs)]

    def extract_batch(self, docs: Sequence[EventInput]) -> list[list[Event]]:
        return [self.extract(doc) for doc in docs]

    def extract(self, doc: EventInput) -> list[Event]:
        if doc.predicates:
            return _predicate_events(doc)
        return [event for event, _ in self.events_with_triplets(doc)]

    def events_with_triplets(
        self, doc: EventInput, *, keep_weak: bool = False
    ) -> list[tuple[Event, Triplet]]:
        """Each event with the triplet it comes from. `keep_weak` also keeps, typed `other`,
        the asserted triplets the rules find too weak alone (the language-model backends'
        candidates)."""
        by_sentence = _entities_by_sentence(doc)
        found = []
        for triplet in doc.triplets:
            event = _event(
                doc.text, triplet, by_sentence.get(triplet.sentence, []), keep_weak=keep_weak
            )
            if event is not None:
                found.append((event, triplet))
        return found


def _event(
    text: str, triplet: Triplet, entities: list[Entity], *, keep_weak: bool = False
) -> Event | None:
    if triplet.negated:
        return None
    kind = event_type(triplet.action)
    participants = _participants(triplet, kind, entities)
    mentions_entity = any(p.label is not None for p in participants)
    weak = not mentions_entity or triplet.action.split(" ")[0] in LIGHT_VERBS
    if kind is None and weak and not keep_weak:
        return None
    return Event(
        trigger=text[triplet.start_char : triplet.end_char] or triplet.action,
        type=kind or "other",
        participants=participants,
        location=_first_with_label(entities, LOCATION_LABELS),
        time=_first_with_label(entities, TIME_LABELS),
        sentence=triplet.sentence,
        source="rules",
    )


# Participants kept per event: the named entities of its sentence nearest to the trigger.
MAX_PARTICIPANTS = 4


def _predicate_events(doc: EventInput) -> list[Event]:
    """One event per asserted predicate: every main verb that is not a light verb, event
    nouns and outcome adjectives (see eventpipe.nlp.predicates). Participants are the named
    entities of the sentence, with roles from the triplet of the same verb when there is one
    and canonical keys; reporting verbs make `statement` events marked `reporting`."""
    by_sentence = _entities_by_sentence(doc)
    triplets: dict[int, list[Triplet]] = {}
    for triplet in doc.triplets:
        triplets.setdefault(triplet.start_char, []).append(triplet)
    events = []
    for predicate in doc.predicates:
        head = predicate.lemma.split(" ")[0]
        if predicate.negated or (predicate.kind == "verb" and head in LIGHT_VERBS):
            continue
        kind = (event_type(predicate.lemma) if predicate.kind == "verb"
                else noun_type(predicate.lemma))
        entities = by_sentence.get(predicate.sentence, [])
        start, end = (doc.sentences[predicate.sentence]
                      if predicate.sentence < len(doc.sentences) else (None, None))
        events.append(Event(
            trigger=doc.text[predicate.start_char:predicate.end_char] or predicate.lemma,
            type=kind or "other",
            participants=_entity_participants(
                predicate, kind, entities, triplets.get(predicate.start_char, [])),
            location=_first_with_label(entities, LOCATION_LABELS),
            time=_first_with_label(entities, TIME_LABELS),
            sentence=predicate.sentence,
            source="rules",
            lemma=predicate.lemma,
            reporting=is_reporting(kind),
            start_char=predicate.start_char,
            end_char=predicate.end_char,
            sentence_start=start,
            sentence_end=end,
        ))
    return events


def _entity_participants(predicate: Predicate, kind: str | None, entities: list[Entity],
                         triplets: list[Triplet]) -> list[Participant]:
    named = [e for e in entities if e.label in NAMED_LABELS and entity_key(e.text, e.label)]
    nearest = sorted(named, key=lambda e: (abs(e.start_char - predicate.start_char),
                                           e.start_char))[:MAX_PARTICIPANTS]
    object_role = "patient" if kind in _PATIENT_TYPES else "theme"
    found = []
    for ent in sorted(nearest, key=lambda e: e.start_char):
        role = "location" if ent.label in LOCATION_LABELS else "participant"
        for triplet in triplets:
            if ent.text in triplet.subject:
                role = "patient" if triplet.passive else "agent"
            elif triplet.object is not None and ent.text in triplet.object:
                role = object_role
            elif triplet.agent is not None and ent.text in triplet.agent:
                role = "agent"
            else:
                continue
            break
        found.append(Participant(text=ent.text, role=role, label=ent.label,
                                 key=entity_key(ent.text, ent.label), start_char=ent.start_char,
                                 end_char=ent.end_char))
    return found


def _participants(triplet: Triplet, kind: str | None, entities: list[Entity]) -> list[Participant]:
    label = labeller(entities)
    object_role = "patient" if kind in _PATIENT_TYPES else "theme"
    found = [
        Participant(
            text=triplet.subject,
            role="patient" if triplet.passive else "agent",
            label=label(triplet.subject),
        )
    ]
    if triplet.object is not None:
        found.append(
            Participant(text=triplet.object, role=object_role, label=label(triplet.object))
        )
    if triplet.agent is not None:
        found.append(Participant(text=triplet.agent, role="agent", label=label(triplet.agent)))
    return found


def labeller(entities: list[Entity]) -> Callable[[str], str | None]:
    """Labels a phrase with the NER label of a named entity of its sentence that the phrase
    is, starts with ("Maria Lopez of the Green Forum") or ends with after a title ("chief
    executive Maria Lopez"). Triplets carry phrase texts, not offsets, so the match is
    textual; numbers and dates inside a phrase ("nine people") do not make it an entity."""
    names = [
        (_strip_article(ent.text), ent.label)
        for ent in entities
        if ent.label in NAMED_LABELS and ent.text
    ]

    def label(phrase: str) -> str | None:
        bare = _strip_article(phrase)
        for is_match in (
            lambda name: bare == name,
            lambda name: bare.startswith(name + " "),
            lambda name: bare.endswith(" " + name) and _is_title(bare[: -len(name)]),
        ):
            for name, entity_label in names:
                if is_match(name):
                    return entity_label
        return None

    return label


def _is_title(prefix: str) -> bool:
    """Whether words before a name are a title ("chief executive"), not a prepositional
    phrase whose object the name is ("police in Chicago")."""
    return not any(word.lower() in _PREPOSITIONS for word in prefix.split())


_PREPOSITIONS = frozenset({"in", "of", "at", "for", "from", "on", "with", "by", "near", "to"})


def _strip_article(text: str) -> str:
    head, _, rest = text.partition(" ")
    return rest if rest and head.lower() in ("the", "a", "an") else text


def _first_with_label(entities: list[Entity], labels: frozenset[str]) -> str | None:
    for ent in entities:
        if ent.label in labels:
            return ent.text
    return None


def sentence_of(doc: EventInput, char: int) -> int:
    """The index of the sentence holding a character offset; 0 without sentences."""
    starts = [start for start, _ in doc.sentences]
    return max(bisect.bisect_right(starts, char) - 1, 0)


def _entities_by_sentence(doc: EventInput) -> dict[int, list[Entity]]:
    """Entities grouped by the index of the sentence holding their first character, in text
    order. Without sentences everything is sentence 0."""
    starts = [start for start, _ in doc.sentences]
    grouped: dict[int, list[Entity]] = {}
    for ent in sorted(doc.entities, key=lambda ent: (ent.start_char, ent.end_char)):
        index = max(bisect.bisect_right(starts, ent.start_char) - 1, 0)
        grouped.setdefault(index, []).append(ent)
    return grouped


# The backends by name, as "module:factory" (as faust names its stores): a backend module is
# imported only when chosen, and this module imports none of them, so the language-model
# backends, which build on this module, can be added without an import back up. A factory
# takes the settings. In the order the settings list them; only `rules` needs nothing
# installed beyond the base.
BACKENDS: dict[str, str] = {
    "rules": "eventpipe.nlp.events:build_rules",
    "transformers": "eventpipe.nlp.llm:build_transformers",
    "openai": "eventpipe.nlp.llm:build_openai",
}
BACKEND_NAMES = tuple(BACKENDS)


def build_rules(settings: Settings) -> EventBackend:
    return RulesBackend()


def get_backend(name: str, settings: Settings | None = None) -> EventBackend:
    """A fresh backend of the given name, configured from `settings` (default: the
    environment's); ValueError names the known ones otherwise."""
    if name not in BACKENDS:
        known = ", ".join(BACKEND_NAMES)
        raise ValueError(f"unknown events backend {name!r}; known backends: {known}")
    module, _, factory = BACKENDS[name].partition(":")
    make: Callable[[Settings], EventBackend] = getattr(importlib.import_module(module), factory)
    return make(settings or get_settings())


def build_backend(settings: Settings) -> EventBackend:
    """The backend `EVENTPIPE_LLM_BACKEND` names."""
    return get_backend(settings.llm_backend, settings)
