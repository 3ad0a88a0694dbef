"""Storylines and event links on crafted batches whose right answer is known: two small
stories plus unrelated documents, through the real pipeline functions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import checkpoint, through_pipeline

from eventpipe.linking.batch import compute, document_profile
from eventpipe.linking.clustering import OnlineStorylines
from eventpipe.linking.items import event_items
from eventpipe.linking.links import (
    MAX_BLOCK,
    MAX_LINKS_PER_EVENT,
    WINDOW,
    candidate_pairs,
    link_events,
)
from eventpipe.settings import Settings

# Two wordings of the same shape: five articles on a disaster in a city, five on a company
# takeover, four unrelated ones. Nothing in eventpipe knows these words.
QUAKE = [
    "A magnitude 6.8 earthquake struck Izmir on Friday, collapsing buildings across the city.",
    "Rescue teams pulled survivors from collapsed buildings in Izmir after the earthquake.",
    "The death toll from the Izmir earthquake rose to 85, Turkish officials said on Sunday.",
    "Aftershocks rattled Izmir as families who lost homes in the earthquake slept in tents.",
    "Engineers inspected damaged buildings in Izmir a week after the deadly earthquake.",
]
TAKEOVER = [
    "Vodafone agreed to buy Three UK for 15 billion pounds, creating Britain's largest "
    "mobile operator.",
    "Regulators will review Vodafone's acquisition of Three UK, the Competition and Markets "
    "Authority said.",
    "Shares in Vodafone rose after the takeover of Three UK was announced to investors.",
    "Unions warned that Vodafone's purchase of Three UK could cost thousands of jobs.",
    "Vodafone chief executive Margherita Della Valle defended the Three UK deal before "
    "lawmakers.",
]
FLOOD = [
    "Floodwaters swept through Porto Alegre after the Guaiba river burst its banks.",
    "Soldiers evacuated residents of Porto Alegre by boat as the Guaiba flood spread.",
    "The flood in Porto Alegre left 150,000 people without drinking water, the mayor said.",
    "Volunteers in Porto Alegre handed out food to families displaced by the flood.",
    "Damage from the Porto Alegre flood will take years to repair, the state governor warned.",
]
MERGER = [
    "Bayer will merge its seed unit with Corteva in a deal worth 20 billion dollars.",
    "Corteva shareholders approved the merger with Bayer's seed business on Tuesday.",
    "Farmers fear the Bayer and Corteva merger will raise seed prices.",
    "European regulators opened an inquiry into the Bayer Corteva merger.",
    "Bayer shares climbed as investors welcomed the Corteva merger plan.",
]
NOISE = [
    "The Vienna Philharmonic played a new symphony by a young composer on Saturday.",
    "A chef opened a small bakery on Main Street in Portland selling sourdough bread.",
    "Scientists described a new species of tree frog found in the Peruvian rainforest.",
    "The city council approved a budget for repairing bicycle lanes next spring.",
]


def batch(first: list[str], second: list[str]) -> list[tuple[str, str, str | None]]:
    docs = [(f"a{i}", text, f"2025-03-{1 + i:02d}") for i, text in enumerate(first)]
    docs += [(f"b{i}", text, f"2025-03-{10 + i:02d}") for i, text in enumerate(second)]
    docs += [(f"n{i}", text, f"2025-03-{20 + i:02d}") for i, text in enumerate(NOISE)]
    # Interleaved, as documents of several stories arrive in a stream.
    return [docs[i] for i in sorted(range(len(docs)), key=lambda i: (i % 5, i))]


@pytest.fixture(scope="module")
def quake_takeover() -> list[dict[str, Any]]:
    return through_pipeline(batch(QUAKE, TAKEOVER))


@pytest.mark.parametrize("stories", [(QUAKE, TAKEOVER), (FLOOD, MERGER)],
                         ids=["quake-takeover", "flood-merger"])
def test_two_stories_and_noise(stories: tuple[list[str], list[str]]) -> None:
    records = through_pipeline(batch(*stories))
    out = compute(Settings(), checkpoint(records, failed=1), records)
    groups = sorted(sorted(s["doc_ids"]) for s in out.storylines)
    assert groups == [[f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)]]
    for link in out.links:  # links stay inside each story, never to the unrelated documents
        assert link["source_doc_id"][0] == link["target_doc_id"][0]
        assert link["source_doc_id"][0] in "ab"
        assert 0 < link["score"] <= 1
    assert {link["source_doc_id"][0] for link in out.links} == {"a", "b"}
    assert out.stats["documents"] == {"total": 15, "processed": 14, "failed": 1}
    assert out.stats["event_links"] == len(out.links) and out.stats["storylines"] == 2


def test_titles_counts_and_dates(quake_takeover: list[dict[str, Any]]) -> None:
    out = compute(Settings(), checkpoint(quake_takeover), quake_takeover)
    quake, takeover = sorted(out.storylines, key=lambda s: s["doc_ids"][0])
    assert "Izmir" in quake["title"] and "arthquake" in quake["title"]
    assert takeover["title"].startswith("Vodafone") and "Three UK" in takeover["title"]
    assert (quake["document_count"], quake["start"], quake["end"]) == (
        5, "2025-03-01", "2025-03-05")
    assert takeover["doc_ids"] == [f"b{i}" for i in range(5)]  # in time
    days = [e["doc_id"] for e in takeover["events"]]
    assert days == sorted(days)


def test_reporting_verbs_and_pronouns_never_link_documents() -> None:
    texts = ["He said the weather was cold. She said so too.",
             "She said her cat was lost. He said he would help.",
             "They said the train arrived late. He told them so.",
             "It said profits would fall. She said that was expected."]
    said = [(f"r{i}", text, f"2025-04-0{i + 1}") for i, text in enumerate(texts)]
    records = through_pipeline(said)
    events = [e for r in records for e in r["events"]]
    assert events and all(e["reporting"] for e in events if e["lemma"] == "say")
    out = compute(Settings(), checkpoint(records), records)
    assert out.links == [] and out.storylines == []


def test_storylines_grow_online(quake_takeover: list[dict[str, Any]]) -> None:
    online = OnlineStorylines()
    sizes = []
    for record in quake_takeover:
        online.add(document_profile(record))
        sizes.append(max(len(g) for g in online.groups()))
    assert sizes[0] == 1 and sizes[-1] >= 4  # stories form as documents arrive
    assert sizes == sorted(sizes)
    online.add(document_profile(quake_takeover[0]))  # a redelivery changes nothing
    final = sorted(sorted(g) for g in online.finish() if len(g) > 1)
    assert final == [[f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)]]


def test_links_carry_their_evidence(quake_takeover: list[dict[str, Any]]) -> None:
    out = compute(Settings(), checkpoint(quake_takeover), quake_takeover)
    link = next(x for x in out.links if x["evidence"]["lemma"] == "earthquake")
    assert link["evidence"]["same_storyline"] and link["evidence"]["same_lemma"]
    assert "izmir" in link["evidence"]["shared_participants"]


def test_blocking_never_compares_every_pair() -> None:
    # 1,000 events of 250 unrelated groups sharing one lemma: candidates stay within groups.
    records = [{"id": f"d{i}", "events": [{
        "trigger": "met", "lemma": "meet", "type": "meeting",
        "participants": [{"text": f"Person{i // 4}", "role": "agent", "label": "PERSON",
                          "key": f"person{i // 4}"}]}]} for i in range(1000)]
    pairs = candidate_pairs(event_items(records), {})
    assert len(pairs) == 250 * 6
    assert MAX_BLOCK < 1000
    assert len(link_events(event_items(records), {}, 0.5)) == 250 * 6


def test_each_event_keeps_its_strongest_links_only() -> None:
    # 100 documents of one storyline, each with one "meet" event, all above the threshold with
    # each other. Each event is compared with a window of the others, not all 99, and keeps
    # its strongest partners: those sharing its participant.
    n = 100
    records = [{"id": f"d{i:03d}", "events": [{
        "trigger": "met", "lemma": "meet", "type": "meeting",
        "participants": [{"text": f"P{i % 5}", "role": "agent", "label": "PERSON",
                          "key": f"p{i % 5}"}]}]} for i in range(n)]
    items = event_items(records)
    storyline_of = {r["id"]: "s1" for r in records}
    # Two blocks per event (the storyline's lemma, the participant key with the lemma).
    assert len(candidate_pairs(items, storyline_of)) <= 2 * n * WINDOW < n * (n - 1) // 2
    links = link_events(items, storyline_of, 0.3)
    assert len(links) <= n * MAX_LINKS_PER_EVENT
    per_doc: dict[str, list[str]] = {}
    for link in links:
        per_doc.setdefault(link.source.doc_id, []).append(link.target.doc_id)
        per_doc.setdefault(link.target.doc_id, []).append(link.source.doc_id)
    assert len(per_doc) == n
    for doc, partners in per_doc.items():
        shared = [p for p in partners if int(p[1:]) % 5 == int(doc[1:]) % 5]
        assert len(shared) >= min(MAX_LINKS_PER_EVENT, n // 5 - 1)


def test_links_and_storylines_are_the_same_in_every_process(
        quake_takeover: list[dict[str, Any]], tmp_path: Path) -> None:
    # Keys are sets, whose order depends on the process's string hashing; a tie between two
    # names must not change a title, nor an iteration order a story.
    import json

    source = tmp_path / "records.json"
    source.write_text(json.dumps(quake_takeover))
    script = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from pipeline_helpers import checkpoint\n"
        "from eventpipe.linking.batch import compute\n"
        "from eventpipe.settings import Settings\n"
        "records = json.load(open(sys.argv[1]))\n"
        "out = compute(Settings(), checkpoint(records), records)\n"
        "print(json.dumps([out.links, out.storylines]))\n"
    )
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        result = subprocess.run(
            [sys.executable, "-c", script, str(source), str(Path(__file__).parent)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_the_linker_never_imports_spacy() -> None:
    # spaCy's import pulls in thinc and torch: ~500 MB of RSS in a service that never parses.
    script = ("import sys\nimport services.linker.service\n"
              "print(sorted(m for m in ('spacy', 'thinc', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).parents[2], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
