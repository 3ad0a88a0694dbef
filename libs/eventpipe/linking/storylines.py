"""Storylines: connected groups of linked events, ordered in time."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from eventpipe.linking.items import EventItem
from eventpipe.linking.links import Link


def _components(links: list[Link]) -> list[list[EventItem]]:
    parent: dict[tuple[str, int], tuple[str, int]] = {}
    items: dict[tuple[str, int], EventItem] = {}

    def find(k: tuple[str, int]) -> tuple[str, int]:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for link in links:
        for item in (link.source, link.target):
            items[item.key] = item
            parent.setdefault(item.key, item.key)
        ra, rb = find(link.source.key), find(link.target.key)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[tuple[str, int], list[EventItem]] = {}
    for key, item in items.items():
        groups.setdefault(find(key), []).append(item)
    return list(groups.values())


def _order(item: EventItem) -> tuple[date, str, int]:
    return (item.published or date.max, item.doc_id, item.index)


def _most_common(counts: Counter[str], n: int) -> list[str]:
    """The `n` most frequent, ties by name: the same title in every run (participants are
    sets, whose order changes from process to process)."""
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def build_storylines(job_id: str, links: list[Link]) -> list[dict[str, Any]]:
    groups = sorted((sorted(g, key=_order) for g in _components(links)),
                    key=lambda g: _order(g[0]))
    storylines = []
    for n, events in enumerate(groups, start=1):
        main = _most_common(Counter(p for e in events for p in e.participants), 2)
        trigger = (_most_common(Counter(e.trigger for e in events if e.trigger), 1)
                   or ["events"])[0]
        title = f"{' and '.join(main).title() or 'Untitled'}: {trigger}"
        dates = [e.published for e in events if e.published]
        doc_ids = list(dict.fromkeys(e.doc_id for e in events))
        storylines.append({
            "job_id": job_id,
            "storyline_id": f"{job_id[:8]}-s{n:04d}",
            "title": title,
            "doc_ids": doc_ids,
            "events": [{"doc_id": e.doc_id, "event": e.index,
                        "published": e.published.isoformat() if e.published else None,
                        **e.raw} for e in events],
            "start": min(dates).isoformat() if dates else None,
            "end": max(dates).isoformat() if dates else None,
        })
    return storylines
