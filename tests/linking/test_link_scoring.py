"""link_events, which scores all candidate pairs at once (numpy), against the rules taken one
pair at a time: the same pairs, the same scores bit for bit, the same links kept."""

from __future__ import annotations

import heapq
import random
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, timedelta

from eventpipe.linking.items import EventItem
from eventpipe.linking.links import (
    MAX_BLOCK,
    MAX_LINKS_PER_EVENT,
    REPORTING_WEIGHT,
    TIME_SPAN_DAYS,
    WEIGHTS,
    WINDOW,
    blocking_keys,
    candidate_pairs,
    link_events,
)

THRESHOLD = 0.4


def generated_events(seed: int) -> tuple[list[EventItem], dict[str, str]]:
    """Events from few lemmas, types, keys, times and dates, so that many scores tie and many
    events have more partners above the threshold than they keep; some events are reporting,
    some have no date, no keys or no storyline, some documents several events."""
    rng = random.Random(seed)
    start = date(2024, 3, 1)
    items = []
    for d in range(120):
        published = None if rng.random() < 0.2 else start + timedelta(rng.randrange(45))
        for index in range(rng.randrange(1, 5)):
            items.append(EventItem(
                doc_id=f"d{d:03d}", index=index, trigger="", type=rng.choice(
                    ["other", "attack", "meeting"]), participants=frozenset(), location=None,
                time=rng.choice([None, "", "monday", "may 3"]), published=published, raw={},
                lemma=rng.choice(["meet", "attack", "say"]), reporting=rng.random() < 0.15,
                keys=frozenset(k for k in ("a", "b", "c", "d") if rng.random() < 0.3)))
    storyline_of = {f"d{d:03d}": f"s{d % 3}" for d in range(120) if d % 4}
    return items, storyline_of


def reference_pairs(items: list[EventItem], storyline_of: Mapping[str, str]
                    ) -> list[tuple[int, int]]:
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


def reference_score(x: EventItem, y: EventItem, story_x: str | None, story_y: str | None
                    ) -> float:
    total = WEIGHTS["lemma"] if x.lemma == y.lemma else 0.0
    if x.type != "other" and x.type == y.type:
        total += WEIGHTS["type"]
    if x.keys and y.keys and (shared := len(x.keys & y.keys)):
        total += WEIGHTS["participants"] * (shared / (len(x.keys) + len(y.keys) - shared))
    if story_x is not None and story_x == story_y:
        total += WEIGHTS["storyline"]
    if x.time and x.time == y.time:
        total += WEIGHTS["time"]
    elif x.published and y.published:
        days = abs(x.published.toordinal() - y.published.toordinal())
        total += WEIGHTS["time"] * max(0.0, 1.0 - days / TIME_SPAN_DAYS)
    return total * REPORTING_WEIGHT if x.reporting or y.reporting else total


def test_links_are_those_of_scoring_one_pair_at_a_time() -> None:
    for seed in range(3):
        items, storyline_of = generated_events(seed)
        pairs = reference_pairs(items, storyline_of)
        assert candidate_pairs(items, storyline_of) == pairs
        story = [storyline_of.get(i.doc_id) for i in items]
        partners: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for a, b in pairs:
            total = reference_score(items[a], items[b], story[a], story[b])
            if total >= THRESHOLD:
                partners[a].append((-total, b))
                partners[b].append((-total, a))
        # The cap is reached on a tie, and reporting events are paired: the test
        # compares which links are kept.
        assert any(len(p) > MAX_LINKS_PER_EVENT and sorted(p)[MAX_LINKS_PER_EVENT - 1][0]
                   == sorted(p)[MAX_LINKS_PER_EVENT][0] for p in partners.values())
        assert any(items[a].reporting for a, _ in pairs)
        kept = {}
        for a, mine in partners.items():
            for negative, b in heapq.nsmallest(MAX_LINKS_PER_EVENT, mine):
                kept[min(a, b), max(a, b)] = -negative
        expected = [(items[a].key, items[b].key, total.hex(),
                     story[a] is not None and story[a] == story[b])
                    for (a, b), total in sorted(kept.items())]
        got = [(link.source.key, link.target.key, link.score.hex(), link.same_storyline)
               for link in link_events(items, storyline_of, THRESHOLD)]
        assert got == expected
