"""Events of a batch, flattened with what linking compares."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventpipe.nlp.events import is_reporting
from eventpipe.nlp.keys import KEYED_LABELS, entity_key
from eventpipe.storage.base import ResultRecord

_WORD = re.compile(r"[a-z0-9]+")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def normalize(text: str) -> str:
    """Lowercase words without a leading article: "The Senate" and "senate" block together."""
    words = _WORD.findall(text.lower())
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


def published(meta: dict[str, Any]) -> date | None:
    """The document's publication date from its meta (`published`, `date`), if any."""
    for key in ("published", "date", "published_at"):
        value = meta.get(key)
        if isinstance(value, str) and (m := _DATE.search(value)):
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class EventItem:
    doc_id: str
    index: int  # the event's position in its document's `events`
    trigger: str
    type: str
    participants: frozenset[str]
    location: str | None
    time: str | None
    published: date | None
    raw: dict[str, Any]
    lemma: str = ""
    reporting: bool = False
    keys: frozenset[str] = frozenset()  # canonical keys of its named participants

    @property
    def key(self) -> tuple[str, int]:
        return (self.doc_id, self.index)


def event_items(records: Iterable[ResultRecord]) -> list[EventItem]:
    items = []
    for record in records:
        day = published(record.get("meta") or {})
        for i, event in enumerate(record.get("events") or []):
            participants = frozenset(
                p for p in (normalize(x.get("text", "")) for x in event.get("participants", []))
                if p)
            location = normalize(event["location"]) if event.get("location") else None
            trigger = normalize(event.get("trigger", ""))
            kind = event.get("type", "other")
            keys = frozenset(
                k for x in event.get("participants", [])
                if (k := x.get("key") or (entity_key(x.get("text", ""), x.get("label"))
                                          if x.get("label") in KEYED_LABELS else None)))
            items.append(EventItem(
                doc_id=record["id"], index=i, trigger=trigger, type=kind,
                participants=participants, location=location or None, time=event.get("time"),
                published=day, raw=event, lemma=str(event.get("lemma") or trigger),
                reporting=bool(event.get("reporting", is_reporting(kind))), keys=keys,
            ))
    return items
