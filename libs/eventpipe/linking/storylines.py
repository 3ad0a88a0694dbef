"""Storylines: the documents of one story (see eventpipe.linking.clustering) with their
events in time order, a title that says what happened, the number of documents and the date
span. A document alone is no storyline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date
from typing import Any

from eventpipe.linking.items import EventItem
from eventpipe.nlp.events import NOUN_TRIGGERS
from eventpipe.nlp.keys import entity_key

# Events of these types say little about what a story is about on their own.
_WEAK_TYPES = frozenset({"other", "statement"})


def _order(item: EventItem) -> tuple[date, str, int]:
    return (item.published or date.max, item.doc_id, item.index)


def _ranked(counts: Counter[str]) -> list[str]:
    """Most frequent first, ties by name: the same title in every process."""
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def third_person(lemma: str) -> str:
    """ "buy" -> "buys", "take over" -> "takes over", "hit" -> "hits", "try" -> "tries"."""
    head, _, rest = lemma.partition(" ")
    if head.endswith(("s", "sh", "ch", "x", "z", "o")):
        head += "es"
    elif head.endswith("y") and len(head) > 2 and head[-2] not in "aeiou":
        head = head[:-1] + "ies"
    else:
        head += "s"
    return f"{head} {rest}".strip()


def _name(phrase: str | None) -> str | None:
    """A short phrase that names something ("Three UK", "the Vodafone board"), without a
    leading article; None for pronouns, long phrases and common nouns."""
    if not phrase:
        return None
    words = phrase.split()
    if words[0].lower() in ("the", "a", "an"):
        words = words[1:]
    if not words or len(words) > 4 or not words[0][:1].isupper() or entity_key(
            " ".join(words)) is None:
        return None
    return " ".join(words)


def title(events: list[EventItem], triplets: list[dict[str, Any]]) -> str:
    """What happened. The actions most documents report are tried in turn for a triplet
    that names who did it to whom ("Vodafone buys Three UK"); a noun event is named with its
    place or main participant ("Earthquake in Izmir"); else the main action with its main
    participant, or the storyline's main names."""
    per_doc = {(e.doc_id, e.lemma, e.type) for e in events if not e.reporting and e.lemma}
    typed = _ranked(Counter(lemma for _, lemma, kind in per_doc if kind not in _WEAK_TYPES))
    any_kind = _ranked(Counter(lemma for _, lemma, _ in per_doc))
    names = Counter(p["text"] for e in events for p in e.raw.get("participants", [])
                    if p.get("key"))
    ranked = typed or any_kind
    if not ranked:
        return " and ".join(_ranked(names)[:2]) or "Untitled"
    for lemma in ranked[:3]:
        said = Counter(
            (subject, obj) for t in triplets if t.get("action") == lemma
            and not t.get("negated") and (subject := _name(t.get("subject")))
            and (obj := _name(t.get("object"))) and subject != obj)
        if said:
            subject, obj = min(said, key=lambda k: (-said[k], k))
            return f"{subject} {third_person(lemma)} {obj}"
    lemma = ranked[0]
    found = Counter(p["text"] for e in events if e.lemma == lemma
                    for p in e.raw.get("participants", []) if p.get("key"))
    places = Counter(p["text"] for e in events if e.lemma == lemma
                     for p in e.raw.get("participants", []) if p.get("role") == "location")
    main = (_ranked(found) or _ranked(names) or [""])[0]
    if lemma in NOUN_TRIGGERS or lemma.endswith("ing"):  # a noun: "Earthquake in Izmir"
        if places:
            return f"{lemma.capitalize()} in {_ranked(places)[0]}"
        return f"{main} {lemma}" if main else lemma.capitalize()
    return f"{main} {third_person(lemma)}" if main else lemma.capitalize()


def build_storylines(job_id: str, groups: list[list[str]], items: list[EventItem],
                     triplets: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Storylines of the groups of two documents or more; `triplets` by document id."""
    by_doc: dict[str, list[EventItem]] = {}
    for item in items:
        by_doc.setdefault(item.doc_id, []).append(item)
    stories = []
    for docs in groups:
        if len(docs) < 2:
            continue
        events = sorted((e for d in docs for e in by_doc.get(d, [])), key=_order)
        stories.append((docs, events))
    stories.sort(key=lambda s: (_order(s[1][0]) if s[1] else (date.max, s[0][0], 0)))
    storylines = []
    for n, (docs, events) in enumerate(stories, start=1):
        dates = sorted(e.published for e in events if e.published)
        first = {e.doc_id: e for e in reversed(events)}
        doc_ids = sorted(docs, key=lambda d: _order(first[d]) if d in first else
                         (date.max, d, 0))
        storylines.append({
            "job_id": job_id,
            "storyline_id": f"{job_id[:8]}-s{n:04d}",
            "title": title(events, [t for d in doc_ids for t in triplets.get(d, [])]),
            "doc_ids": doc_ids,
            "document_count": len(doc_ids),
            "events": [{"doc_id": e.doc_id, "event": e.index,
                        "published": e.published.isoformat() if e.published else None,
                        **e.raw} for e in events],
            "start": dates[0].isoformat() if dates else None,
            "end": dates[-1].isoformat() if dates else None,
        })
    return storylines
