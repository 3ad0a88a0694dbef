"""Event links across documents: candidate pairs come from blocking keys (a shared
participant, location, or event type and trigger), never from all pairs; each candidate gets
a score from shared participants, location, type, trigger, time proximity and text
similarity, and becomes a link at or above the threshold, with its evidence."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventpipe.linking.items import EventItem
from eventpipe.linking.similarity import Similarity

# A key shared by more events than this says little ("police", "the company") and would make
# the work quadratic; such keys are not used for blocking.
MAX_BLOCK = 200
WEIGHTS = {"participants": 0.35, "location": 0.15, "type": 0.1, "trigger": 0.1, "time": 0.1,
           "text": 0.2}


@dataclass(frozen=True)
class Link:
    source: EventItem
    target: EventItem
    score: float
    evidence: dict[str, Any] = field(hash=False, compare=False)

    def to_json(self, job_id: str) -> dict[str, Any]:
        return {"job_id": job_id, "source_doc_id": self.source.doc_id,
                "source_event": self.source.index, "target_doc_id": self.target.doc_id,
                "target_event": self.target.index, "score": round(self.score, 4),
                "evidence": self.evidence}


def blocking_keys(item: EventItem) -> Iterable[str]:
    for p in item.participants:
        yield f"p:{p}"
    if item.location:
        yield f"l:{item.location}"
    if item.type != "other":
        yield f"t:{item.type}:{item.trigger}"


def candidate_pairs(items: list[EventItem]) -> set[tuple[int, int]]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        for key in set(blocking_keys(item)):
            blocks[key].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) > MAX_BLOCK:
            continue
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:]:
                if items[a].doc_id != items[b].doc_id:
                    pairs.add((a, b))
    return pairs


def score(a: EventItem, b: EventItem, similarity: Similarity, threshold: float = 0.0
          ) -> tuple[float, dict[str, Any]] | None:
    """The pair's score and evidence, or None when it stays below `threshold`. The cheap
    parts come first; text similarity (the costly part) is computed only when it could lift
    the pair to the threshold, and evidence is built only for links."""
    shared = a.participants & b.participants
    union_size = len(a.participants) + len(b.participants) - len(shared)
    parts = len(shared) / union_size if union_size else 0.0
    same_location = a.location is not None and a.location == b.location
    days = abs((a.published - b.published).days) if a.published and b.published else None
    time_score = (1.0 if a.time and a.time == b.time
                  else max(0.0, 1.0 - days / 30.0) if days is not None else 0.0)
    same_type, same_trigger = a.type == b.type, a.trigger == b.trigger
    partial = (WEIGHTS["participants"] * parts + WEIGHTS["location"] * same_location
               + WEIGHTS["type"] * same_type + WEIGHTS["trigger"] * same_trigger
               + WEIGHTS["time"] * time_score)
    if partial + WEIGHTS["text"] < threshold:
        return None
    text = similarity(a.doc_id, b.doc_id)
    total = partial + WEIGHTS["text"] * text
    if total < threshold:
        return None
    evidence = {"shared_participants": sorted(shared), "same_location": same_location,
                "same_type": same_type, "same_trigger": same_trigger,
                "days_apart": days, "text_similarity": round(text, 4),
                "similarity": similarity.name}
    return total, evidence


def link_events(items: list[EventItem], similarity: Similarity, threshold: float) -> list[Link]:
    links = []
    for a, b in sorted(candidate_pairs(items)):
        scored = score(items[a], items[b], similarity, threshold)
        if scored is not None:
            links.append(Link(items[a], items[b], scored[0], scored[1]))
    return links
