"""Linking and storylines on a crafted batch whose right answer is known: two stories of five
documents each, plus noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventpipe.linking.batch import compute
from eventpipe.linking.items import event_items
from eventpipe.linking.links import MAX_BLOCK, candidate_pairs, link_events
from eventpipe.settings import Settings

JOB = "6f1c2b9e-4d1a-5e7f-9a3b-2c8d0e4f6a10"


def record(doc_id: str, day: int, text: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": doc_id, "job_id": JOB, "batch_id": "b", "text": text,
            "meta": {"published": f"2025-03-{day:02d}"}, "entities": [], "events": events,
            "timings_ms": {"ner": 10.0, "dp": 12.0, "llm": 1.0}}


def event(trigger: str, type_: str, people: list[str], location: str | None) -> dict[str, Any]:
    return {"trigger": trigger, "type": type_, "location": location, "time": None,
            "participants": [{"text": p, "role": "agent"} for p in people]}


def crafted() -> list[dict[str, Any]]:
    acme = [record(f"a{i}", 1 + i, "Acme Corp agreed to acquire Beta Ltd in a deal that "
                   "regulators in Oslo reviewed; shareholders of Beta Ltd approved the merger.",
                   [event("acquire", "acquisition", ["Acme Corp", "Beta Ltd"], "Oslo")])
            for i in range(5)]
    storm = [record(f"s{i}", 10 + i, "Storm Hilda flooded the coast near Lyon; the mayor of "
                    "Lyon ordered evacuations as rivers rose.",
                    [event("flood", "disaster", ["Storm Hilda", "the mayor"], "Lyon")])
             for i in range(5)]
    noise = [
        record("n1", 3, "The orchestra played a new symphony in Vienna.",
               [event("play", "other", ["the orchestra"], "Vienna")]),
        record("n2", 20, "A chef opened a bakery on Main Street.",
               [event("open", "business", ["a chef"], None)]),
        record("n3", 25, "Scientists described a new species of frog.", []),
    ]
    return acme + storm + noise


def checkpoint(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"job_id": JOB, "batch_id": "b", "total_documents": len(records) + 1,
            "created_at": "2025-03-01T00:00:00Z",
            "failures": {"bad": {"stage": "ingest", "error": "line 9 is not valid JSON: x"}}}


def test_two_stories_and_noise() -> None:
    records = crafted()
    out = compute(Settings(link_similarity="tfidf"), checkpoint(records), records)
    groups = sorted(sorted(s["doc_ids"]) for s in out.storylines)
    assert groups == [[f"a{i}" for i in range(5)], [f"s{i}" for i in range(5)]]
    for link in out.links:  # no link across stories or to noise
        assert link["source_doc_id"][0] == link["target_doc_id"][0]
        assert link["source_doc_id"][0] in "as"
        assert 0 < link["score"] <= 1 and link["evidence"]["shared_participants"]
    assert len(out.links) == 2 * 10  # every pair inside each story of five
    acme = next(s for s in out.storylines if s["doc_ids"][0] == "a0")
    assert [e["doc_id"] for e in acme["events"]] == ["a0", "a1", "a2", "a3", "a4"]  # in time
    assert (acme["start"], acme["end"]) == ("2025-03-01", "2025-03-05")
    assert "Acme Corp" in acme["title"] and "acquire" in acme["title"]

    stats = out.stats
    assert stats["documents"] == {"total": 14, "processed": 13, "failed": 1}
    assert stats["failed_by_stage"] == {"ingest": 1}
    assert stats["events_by_type"]["acquisition"] == 5
    assert stats["event_links"] == 20 and stats["storylines"] == 2
    assert stats["time_per_stage_ms"]["dp"] == {"mean": 12.0, "p95": 12.0}


def test_blocking_never_compares_every_pair() -> None:
    # 1,000 events of 250 unrelated groups: candidates stay within groups.
    records = [record(f"d{i}", 1, "x", [event("meet", "meeting", [f"person {i // 4}"], None)])
               for i in range(1000)]
    for r in records:  # a type+trigger key shared by all: too common to block on
        r["events"][0]["type"] = "meeting"
    pairs = candidate_pairs(event_items(records))
    assert len(pairs) == 250 * 6
    assert MAX_BLOCK < 1000


def test_links_and_storylines_are_the_same_in_every_process() -> None:
    # Participants and terms are sets, whose order depends on the process's string hashing;
    # a tie between two names must not change a title, nor summation order a score.
    script = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_linking import checkpoint, crafted\n"
        "from eventpipe.linking.batch import compute\n"
        "from eventpipe.settings import Settings\n"
        "records = crafted()\n"
        "out = compute(Settings(link_similarity='tfidf'), checkpoint(records), records)\n"
        "print(json.dumps([out.links, out.storylines]))\n"
    )
    outputs = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        result = subprocess.run(
            [sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True,
            text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert "Acme Corp And Beta Ltd: acquire" in outputs.pop()


class FixedSimilarity:
    name = "fixed"

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, a: str, b: str) -> float:
        return self.value


def test_score_and_evidence_of_one_pair() -> None:
    records = [
        record("x1", 1, "", [event("acquire", "acquisition", ["Acme", "Beta"], "Oslo")]),
        record("x2", 4, "", [event("buy", "acquisition", ["Acme"], "Oslo")]),
    ]
    items = event_items(records)
    (link,) = link_events(items, FixedSimilarity(0.5), threshold=0.5)
    # participants 1/2, same location and type, another trigger, 3 days apart, text 0.5
    expected = 0.35 * 0.5 + 0.15 + 0.1 + 0.0 + 0.1 * (1 - 3 / 30) + 0.2 * 0.5
    assert link.score == pytest.approx(expected)
    assert link.evidence == {"shared_participants": ["acme"], "same_location": True,
                             "same_type": True, "same_trigger": False, "days_apart": 3,
                             "text_similarity": 0.5, "similarity": "fixed"}
    # the same pair just under a threshold above its score: no link
    assert link_events(items, FixedSimilarity(0.5), threshold=expected + 1e-9) == []

    # undated, the same time expression counts fully; without text the pair is 0.35 + 0.25
    for r in records:
        r["meta"] = {}
        r["events"][0]["time"] = "Monday"
    (link,) = link_events(event_items(records), FixedSimilarity(0.0), threshold=0.5)
    assert link.score == pytest.approx(0.35 * 0.5 + 0.15 + 0.1 + 0.1)
    assert link.evidence["days_apart"] is None
