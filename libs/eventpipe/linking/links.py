"""Event links across documents, inside and across storylines, with their evidence.

Candidate pairs come from blocking keys, never from all pairs: the same trigger lemma in the
same storyline, the same event type in the same storyline, or the same lemma with a shared
participant key anywhere in the batch (lemma matching within a story is the strong baseline
for cross-document event coreference on news). Each candidate is scored from its evidence
(WEIGHTS); above the threshold it is a link if it is among the `MAX_LINKS_PER_EVENT`
strongest of either event, so links grow with the events, not with the square of a story's
size. A reporting event ("said") weighs
`REPORTING_WEIGHT` of its score: that two people spoke says nothing about what happened."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventpipe.linking.items import EventItem

# A key shared by more events than this says little and would make the work quadratic; such
# keys are not used for blocking.
MAX_BLOCK = 200
# Events of a block each event is compared with, after it in publication order.
WINDOW = 15
WEIGHTS = {"lemma": 0.35, "type": 0.1, "participants": 0.25, "storyline": 0.2, "time": 0.1}
REPORTING_WEIGHT = 0.25
# Each event keeps its strongest links only. On real news (bench/storylines.py, ECB+ dev)
# 15 per event with a window of 15 gave pairwise F1 0.525 with 29,590 links, all candidates
# above the threshold 0.529 with 40,178 (documents in the order saved; 0.517 in publication
# order, as the step now takes them); on the pipeline bench's generated corpus (big stories
# of alike events) 126,362 links instead of 291,035, and the end step shorter by as much.
MAX_LINKS_PER_EVENT = 15
# Days between publication dates at which the time evidence has fallen to 0.
TIME_SPAN_DAYS = 30


@dataclass(frozen=True)
class Link:
    source: EventItem
    target: EventItem
    score: float
    same_storyline: bool

    def to_json(self, job_id: str) -> dict[str, Any]:
        return {"job_id": job_id, "source_doc_id": self.source.doc_id,
                "source_event": self.source.index, "target_doc_id": self.target.doc_id,
                "target_event": self.target.index, "score": round(self.score, 4),
                "evidence": evidence(self.source, self.target, self.same_storyline)}


def blocking_keys(item: EventItem, storyline: str | None) -> Iterable[str]:
    if not item.lemma:
        return
    # A reporting event pairs only through a shared participant, and its score is cut to
    # REPORTING_WEIGHT: "said" in every article of a storyline makes no link.
    if storyline is not None and not item.reporting:
        yield f"s:{storyline}:{item.lemma}"
        if item.type != "other":
            yield f"s:{storyline}:t:{item.type}"
    for key in item.keys:
        yield f"k:{key}:{item.lemma}"


def candidate_pairs(items: list[EventItem], storyline_of: Mapping[str, str]
                    ) -> list[tuple[int, int]]:
    """Pairs of events of different documents sharing a blocking key. Within a block, in
    publication order, each event is paired with the `WINDOW` events after it (sorted
    neighbourhood): the work grows with the events, not with the square of a block."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        for key in set(blocking_keys(item, storyline_of.get(item.doc_id))):
            blocks[key].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) > MAX_BLOCK:
            continue
        members.sort(key=lambda i: (items[i].published or date.max, i))
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:a_pos + 1 + WINDOW]:
                if items[a].doc_id != items[b].doc_id:
                    pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


class _Scorer:
    """Scores pairs of one list of events: what each event contributes is looked up once,
    not per pair (the batch-level step scores ~200 candidate pairs per document)."""

    def __init__(self, items: list[EventItem], storyline_of: Mapping[str, str]) -> None:
        self.lemma = [i.lemma for i in items]
        self.type = [i.type if i.type != "other" else None for i in items]
        self.keys = [i.keys for i in items]
        self.day = [i.published.toordinal() if i.published else None for i in items]
        self.time = [i.time or None for i in items]
        self.reporting = [i.reporting for i in items]
        self.story = [storyline_of.get(i.doc_id) for i in items]

    def same_storyline(self, a: int, b: int) -> bool:
        return self.story[a] is not None and self.story[a] == self.story[b]

    def __call__(self, a: int, b: int) -> float:
        """The pair's score: the weighted sum (WEIGHTS) of the same lemma, the same type (not
        "other"), the Jaccard overlap of participant keys, the same storyline, and time (1
        for the same time expression, else 1 - days between publication dates /
        TIME_SPAN_DAYS); a reporting event's pairs count REPORTING_WEIGHT of it."""
        total = WEIGHTS["lemma"] if self.lemma[a] == self.lemma[b] else 0.0
        if self.type[a] is not None and self.type[a] == self.type[b]:
            total += WEIGHTS["type"]
        keys_a, keys_b = self.keys[a], self.keys[b]
        if keys_a and keys_b:
            shared = len(keys_a & keys_b)
            if shared:
                total += WEIGHTS["participants"] * (shared / (len(keys_a) + len(keys_b) - shared))
        if self.same_storyline(a, b):
            total += WEIGHTS["storyline"]
        if self.time[a] is not None and self.time[a] == self.time[b]:
            total += WEIGHTS["time"]
        elif (day_a := self.day[a]) is not None and (day_b := self.day[b]) is not None:
            total += WEIGHTS["time"] * max(0.0, 1.0 - abs(day_a - day_b) / TIME_SPAN_DAYS)
        return total * REPORTING_WEIGHT if self.reporting[a] or self.reporting[b] else total


def evidence(source: EventItem, target: EventItem, same_storyline: bool) -> dict[str, Any]:
    same_lemma = source.lemma == target.lemma
    shared = source.keys & target.keys
    return {"same_lemma": same_lemma, "lemma": source.lemma if same_lemma else None,
            "same_type": source.type == target.type and source.type != "other",
            "shared_participants": sorted(shared) if shared else [],
            "same_storyline": same_storyline,
            "days_apart": (abs((source.published - target.published).days)
                           if source.published and target.published else None)}


def link_events(items: list[EventItem], storyline_of: Mapping[str, str], threshold: float
                ) -> list[Link]:
    """Links between events of different documents; `storyline_of` maps a document to its
    storyline (documents in none are absent). Each event keeps its `MAX_LINKS_PER_EVENT`
    best-scoring partners (a pair is a link when either side keeps it), so the links grow
    with the events, not with the square of a story's size. Evidence is built when a link
    is written out."""
    scorer = _Scorer(items, storyline_of)
    best: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for a, b in candidate_pairs(items, storyline_of):
        total = scorer(a, b)
        if total >= threshold:
            best[a].append((-total, b))
            best[b].append((-total, a))
    kept: dict[tuple[int, int], float] = {}
    for a, partners in best.items():
        strongest = (partners if len(partners) <= MAX_LINKS_PER_EVENT
                     else heapq.nsmallest(MAX_LINKS_PER_EVENT, partners))
        for negative, b in strongest:
            kept[(a, b) if a < b else (b, a)] = -negative
    return [Link(items[a], items[b], total, scorer.same_storyline(a, b))
            for (a, b), total in sorted(kept.items())]
