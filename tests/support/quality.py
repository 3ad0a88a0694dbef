"""Quality of the language stages against a hand-annotated gold set: precision, recall and
F1 of entities, triplets and each events backend.

The gold set (``tests/data/gold.jsonl``) holds one document a line::

    {"id": "g001", "text": "...",
     "entities": [{"text", "label", "start_char", "end_char"}],
     "triplets": [{"subject", "action", "object"}],
     "events": [{"trigger", "type"}]}

Annotation conventions: entity labels follow spaCy's OntoNotes scheme; triplets are one per
(subject, verb, object), with phrases as `eventpipe.nlp.triplets.phrase` means them
(determiners kept, relative clauses, appositions and conjuncts left out) and ``object`` null
for a verb without a direct object; events are anchored on verbs (the trigger is the verb as
written), typed with the rules lexicon's types, and left out when negated.

Matching is per document and on multisets, so one prediction can match at most one gold
item: entities on (start, end, label), or relaxed on their text alone; triplets on
normalized (subject, action, object); events on (trigger lemma, type). Everything here is
deterministic.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from spacy.language import Language
from spacy.tokens import Doc

from eventpipe.models import Entity, Event, Triplet
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.events import EventBackend, EventInput, get_backend
from eventpipe.nlp.model import load_pipeline
from eventpipe.nlp.triplets import triplets_from_doc
from eventpipe.settings import Settings

# Beside this package, in tests/data.
DEFAULT_GOLD_PATH = Path(__file__).resolve().parents[1] / "data" / "gold.jsonl"
ARTICLES = frozenset({"the", "a", "an"})
# Words a trigger may start with before its verb: "was arrested", "did not sign".
_TRIGGER_NOISE = frozenset(
    {
        "be", "been", "being", "is", "are", "was", "were", "am",
        "have", "has", "had", "do", "does", "did",
        "will", "would", "shall", "should", "can", "could", "may", "might", "must",
        "not", "n't", "to",
    }
)  # fmt: skip
_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = "\"'\u2018\u2019\u201c\u201d.,;:!?()[]"

ENTITIES = "entities"
ENTITIES_TEXT = "entities (text only)"
TRIPLETS = "triplets"


def events_row(backend: str) -> str:
    """The name of the row of an events backend's scores."""
    return f"events [{backend}]"


# --- the gold set --------------------------------------------------------------------------


class _Gold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoldTriplet(_Gold):
    subject: str
    action: str
    object: str | None = None


class GoldEvent(_Gold):
    trigger: str
    type: str


class GoldDocument(_Gold):
    id: str
    text: str
    entities: list[Entity]
    triplets: list[GoldTriplet]
    events: list[GoldEvent]


def load_gold(path: Path | str | None = None) -> list[GoldDocument]:
    """The gold documents of a JSONL file (default: `DEFAULT_GOLD_PATH`), in file order.
    Raises ValueError naming the line of a malformed record or a repeated id."""
    source = Path(path) if path is not None else DEFAULT_GOLD_PATH
    documents: list[GoldDocument] = []
    seen: set[str] = set()
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            document = GoldDocument.model_validate(json.loads(line))
        except ValueError as exc:  # json.JSONDecodeError and ValidationError both are
            raise ValueError(f"{source}:{number}: {exc}") from exc
        if document.id in seen:
            raise ValueError(f"{source}:{number}: repeated id {document.id!r}")
        seen.add(document.id)
        documents.append(document)
    return documents


def offset_errors(documents: Iterable[GoldDocument]) -> list[str]:
    """One message per gold entity whose offsets do not select its text."""
    errors = []
    for doc in documents:
        for ent in doc.entities:
            found = doc.text[ent.start_char : ent.end_char]
            if not 0 <= ent.start_char < ent.end_char <= len(doc.text) or found != ent.text:
                errors.append(
                    f"{doc.id}: {ent.text!r} at [{ent.start_char}:{ent.end_char}] selects {found!r}"
                )
    return errors


# --- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """Counts of one comparison and the figures derived from them. With nothing predicted
    and nothing to find, every figure is 1.0; otherwise an empty denominator gives 0.0."""

    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        if self.predicted == 0:
            return 1.0 if self.gold == 0 else 0.0
        return self.true_positives / self.predicted

    @property
    def recall(self) -> float:
        if self.gold == 0:
            return 1.0 if self.predicted == 0 else 0.0
        return self.true_positives / self.gold

    @property
    def f1(self) -> float:
        precision, recall = self.precision, self.recall
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)

    def __add__(self, other: Score) -> Score:
        return Score(
            self.true_positives + other.true_positives,
            self.predicted + other.predicted,
            self.gold + other.gold,
        )

    def as_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


def score(predicted: Iterable[Hashable], gold: Iterable[Hashable]) -> Score:
    """Compare two multisets of keys: each predicted key matches at most one equal gold key,
    so repeating a prediction cannot raise the true positives past the gold's count."""
    predicted_counts = Counter(predicted)
    gold_counts = Counter(gold)
    matched = predicted_counts & gold_counts
    return Score(
        true_positives=sum(matched.values()),
        predicted=sum(predicted_counts.values()),
        gold=sum(gold_counts.values()),
    )


# --- normalization -------------------------------------------------------------------------


def normalize_text(text: str | None) -> str:
    """Lowercase, whitespace collapsed, quotes and punctuation at either end removed; None is
    the empty string."""
    if text is None:
        return ""
    return _SPACE.sub(" ", text).strip().strip(_EDGE_PUNCT).strip().lower()


def normalize_phrase(text: str | None) -> str:
    """`normalize_text` without one leading article: "The company" -> "company"."""
    normal = normalize_text(text)
    head, _, rest = normal.partition(" ")
    return rest if rest and head in ARTICLES else normal


def entity_key(entity: Entity) -> tuple[int, int, str]:
    return (entity.start_char, entity.end_char, entity.label)


def entity_text_key(entity: Entity) -> str:
    return normalize_text(entity.text)


def triplet_key(subject: str, action: str, obj: str | None) -> tuple[str, str, str]:
    return (normalize_phrase(subject), normalize_text(action), normalize_phrase(obj))


def lemma_map(doc: Doc) -> dict[str, str]:
    """Lowercase word -> lowercase lemma over a parsed doc, verbs winning over other parts of
    speech of the same word ("left" the verb is "leave")."""
    lemmas: dict[str, str] = {}
    for verbs in (False, True):
        for token in doc:
            if (token.pos_ in ("VERB", "AUX")) == verbs and not token.is_punct:
                lemmas[token.lower_] = token.lemma_.lower()
    return lemmas


def trigger_lemma(trigger: str, lemmas: Mapping[str, str]) -> str:
    """The lemma-ish form of a trigger: its words lowercased and lemmatized through `lemmas`
    (unknown words stay as they are), leading auxiliaries and negation dropped, and the
    first word left: "was arrested" -> "arrest", "took over" -> "take"."""
    words = [lemmas.get(word, word) for word in normalize_text(trigger).split()]
    while len(words) > 1 and words[0] in _TRIGGER_NOISE:
        words.pop(0)
    return words[0] if words else ""


def event_key(trigger: str, kind: str, lemmas: Mapping[str, str]) -> tuple[str, str]:
    return (trigger_lemma(trigger, lemmas), normalize_text(kind))


# --- running the pipeline over the gold set ------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """What the spaCy pipeline and the triplet extractor make of one gold document."""

    entities: list[Entity]
    triplets: list[Triplet]
    event_input: EventInput
    lemmas: dict[str, str]


def analyse(nlp: Language, texts: Sequence[str], batch_size: int = 64) -> list[Analysis]:
    """Run the full pipeline (every component at once) over `texts`, in order."""
    found = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        entities = entities_from_doc(doc)
        triplets = triplets_from_doc(doc)
        found.append(
            Analysis(
                entities=entities,
                triplets=triplets,
                event_input=EventInput(doc.text, entities, triplets, sentences_from_doc(doc)),
                lemmas=lemma_map(doc),
            )
        )
    return found


def make_backend(name: str) -> EventBackend:
    """An events backend by name, configured from the environment's ``EVENTPIPE_*``
    settings. Raises when the backend is unknown, not installed or not configured."""
    return get_backend(name, Settings())


@dataclass(frozen=True)
class BackendEvents:
    """A backend's events per document, and how many documents failed (scored as having no
    events) or fell back to the rules backend."""

    events: list[list[Event]]
    failed: int = 0
    fell_back: int = 0


def extract_events(backend: object, inputs: Sequence[EventInput]) -> BackendEvents:
    """Run a backend over `inputs` through ``extract_results`` (one outcome per document: a
    result with ``events`` and ``fallback``, or an exception) where it has one, or else
    ``extract_batch`` (a list of events per document)."""
    extract_results = getattr(backend, "extract_results", None)
    if extract_results is None:
        batch: list[list[Event]] = backend.extract_batch(inputs)  # type: ignore[attr-defined]
        return BackendEvents([list(events) for events in batch])
    per_document: list[list[Event]] = []
    failed = fell_back = 0
    for outcome in extract_results(inputs):
        if isinstance(outcome, Exception):
            failed += 1
            per_document.append([])
            continue
        if getattr(outcome, "fallback", None):
            fell_back += 1
        per_document.append(list(outcome.events))
    return BackendEvents(per_document, failed=failed, fell_back=fell_back)


def score_documents(
    gold: Sequence[GoldDocument],
    analyses: Sequence[Analysis],
    events: Mapping[str, Sequence[Sequence[Event]]] | None = None,
) -> dict[str, Score]:
    """Scores of `analyses` (and of each backend's `events`, one list per document) against
    `gold`, document by document, summed over documents (micro-averaged)."""
    if len(gold) != len(analyses):
        raise ValueError(f"{len(gold)} gold documents but {len(analyses)} analyses")
    events = events or {}
    totals: dict[str, Score] = {ENTITIES: Score(0, 0, 0), ENTITIES_TEXT: Score(0, 0, 0)}
    totals[TRIPLETS] = Score(0, 0, 0)
    for backend in events:
        totals[events_row(backend)] = Score(0, 0, 0)
    for index, (doc, analysis) in enumerate(zip(gold, analyses, strict=True)):
        totals[ENTITIES] += score(map(entity_key, analysis.entities), map(entity_key, doc.entities))
        totals[ENTITIES_TEXT] += score(
            map(entity_text_key, analysis.entities), map(entity_text_key, doc.entities)
        )
        totals[TRIPLETS] += score(
            (triplet_key(t.subject, t.action, t.object) for t in analysis.triplets),
            (triplet_key(t.subject, t.action, t.object) for t in doc.triplets),
        )
        for backend, per_document in events.items():
            totals[events_row(backend)] += score(
                (event_key(e.trigger, e.type, analysis.lemmas) for e in per_document[index]),
                (event_key(e.trigger, e.type, analysis.lemmas) for e in doc.events),
            )
    return totals


@dataclass(frozen=True)
class QualityReport:
    """Scores by row name, and remarks on how the events backends ran."""

    scores: dict[str, Score]
    notes: list[str]


def run_quality(
    backend_names: Sequence[str] = ("rules",),
    *,
    gold_path: Path | str | None = None,
    nlp: Language | None = None,
    backends: Mapping[str, object] | None = None,
) -> QualityReport:
    """Scores of the full pipeline over the gold set, with the events of each backend named
    in `backend_names` (made by `make_backend` unless given in `backends`)."""
    gold = load_gold(gold_path)
    pipeline = nlp if nlp is not None else load_pipeline()
    analyses = analyse(pipeline, [doc.text for doc in gold])
    inputs = [analysis.event_input for analysis in analyses]
    given = dict(backends or {})
    events: dict[str, list[list[Event]]] = {}
    notes: list[str] = []
    for name in backend_names:
        backend = given[name] if name in given else make_backend(name)
        found = extract_events(backend, inputs)
        events[name] = found.events
        if found.failed or found.fell_back:
            notes.append(
                f"events [{name}]: {found.failed} of {len(inputs)} documents failed, "
                f"{found.fell_back} fell back to rules"
            )
    return QualityReport(score_documents(gold, analyses, events), notes)


def evaluate(
    backend_names: Sequence[str] = ("rules",),
    *,
    gold_path: Path | str | None = None,
    nlp: Language | None = None,
) -> dict[str, dict[str, float]]:
    """`run_quality` as plain figures: row name -> {"precision", "recall", "f1"}. Rows:
    `ENTITIES`, `ENTITIES_TEXT`, `TRIPLETS` and ``events_row(name)`` per backend."""
    report = run_quality(backend_names, gold_path=gold_path, nlp=nlp)
    return {row: result.as_dict() for row, result in report.scores.items()}


def format_table(scores: Mapping[str, Score]) -> str:
    """A fixed-width table of the scores, one row each, with their counts."""
    width = max([len("metric"), *map(len, scores)])
    lines = [f"{'metric':<{width}}  precision  recall     f1    tp  pred  gold"]
    for row, result in scores.items():
        lines.append(
            f"{row:<{width}}  {result.precision:9.3f}  {result.recall:6.3f}  {result.f1:5.3f}"
            f"  {result.true_positives:4d}  {result.predicted:4d}  {result.gold:4d}"
        )
    return "\n".join(lines)
