"""Documents grouped into stories incrementally, as they are saved.

Each document becomes a sparse profile: its salient words and the canonical keys of its
named entities, weighted by TF-IDF (document frequencies counted over the documents seen so
far) and cut to its `PROFILE_TERMS` heaviest terms. A new document joins the story whose
members it is closest to on average (average linkage: the dot product with the mean of the
members' profiles) when that is at least the threshold, else it starts a story of its own.
Candidate stories come from an inverted index over profile terms, each term keeping only its
`POSTINGS` most recent stories, so the work per document is bounded whatever the number of
documents: no pair of all documents is ever compared.

`finish` is the end-of-batch step: for batches up to `REPLAY_MAX` documents it rebuilds the
profiles with the final document frequencies (the first documents of a batch were weighed
against few others) and replays the assignment in publication order (then document id), so
the storylines do not depend on the order documents arrived in: running the batch-level
step again gives the same storylines. Then it merges stories whose average linkage reaches
the threshold.

Publication dates keep similar stories apart: a document published long before or after
every member of a story weighs against it (`DATE_GAP_DAYS`, `DATE_PENALTY`).
"""

from __future__ import annotations

import importlib.util
import math
import operator
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from itertools import repeat
from pathlib import Path

from eventpipe.nlp.keys import KEYED_LABELS, entity_key

THRESHOLD = 0.12
ENTITY_WEIGHT = 1.5
PROFILE_TERMS = 80
# A document looks for stories through its heaviest terms only, each remembering its
# POSTINGS most recent stories: at most CANDIDATE_TERMS * POSTINGS stories are scored.
CANDIDATE_TERMS = 10
POSTINGS = 20
# A story keeps at most STORY_TERMS terms of its members' summed profiles (its heaviest),
# pruned when it holds twice as many: memory per story is bounded.
STORY_TERMS = 400
# Batches up to this many documents are replayed with the final document frequencies at
# the end; beyond it the frequencies have long settled, profiles are not kept and the end
# step only merges stories.
REPLAY_MAX = 2000
DATE_GAP_DAYS = 90
DATE_PENALTY = 0.5
_TOKEN = re.compile(r"[a-z][a-z0-9]+(?:[.'-][a-z0-9]+)*|\d{4}")


def _english_stop_words() -> frozenset[str]:
    """spaCy's English stop words, read from its data module without importing spaCy: the
    package pulls in thinc and torch (~500 MB of RSS and 1.5 s at start) into a linker that
    never parses a word."""
    spacy = importlib.util.find_spec("spacy")
    if spacy is None or spacy.origin is None:
        raise ImportError("spaCy is not installed")
    path = Path(spacy.origin).parent / "lang" / "en" / "stop_words.py"
    spec = importlib.util.spec_from_file_location("eventpipe_english_stop_words", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot read spaCy's stop words at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.STOP_WORDS)


# Reporting verbs and newswire boilerplate are in nearly every article of every story.
_NOISE = _english_stop_words() | {
    "said", "says", "say", "told", "tell", "tells", "reported", "reports", "report",
    "according", "announced", "announces", "added", "stated", "claimed", "news", "reuters",
    "ap", "afp", "updated", "read", "story", "click", "photo", "comments", "share", "mr",
    "mrs", "ms", "year", "years", "time", "people", "new",
}


@dataclass(frozen=True)
class Profile:
    """What clustering knows of one document."""

    doc_id: str
    words: Counter[str]
    entities: Counter[str]
    published: date | None = None


def _dot(vector: dict[str, float], total: dict[str, float]) -> float:
    """Sum of vector[t] * total[t] over the vector's terms, in their order (map, not a
    generator: about twice as fast, and the end step's replay makes ~40 per document)."""
    return float(sum(map(operator.mul, vector.values(), map(total.get, vector, repeat(0.0)))))


def publication_order(published: date | None, doc_id: str) -> tuple[date, str]:
    """The order the end step takes documents in, whatever order they came in: by
    publication date (undated last), then id."""
    return (published or date.max, doc_id)


def profile_of(doc_id: str, text: str, entities: Iterable[tuple[str, str]],
               published: date | None = None) -> Profile:
    """A document's profile from its text and (entity text, label) pairs."""
    words = Counter(t for t in _TOKEN.findall(text.lower()) if t not in _NOISE)
    keys = Counter(k for t, label in entities if label in KEYED_LABELS
                   and (k := entity_key(t, label)) is not None)
    return Profile(doc_id, words, keys, published)


@dataclass
class _Story:
    total: dict[str, float] = field(default_factory=dict)  # sum of member profiles
    members: list[str] = field(default_factory=list)
    first: date | None = None
    last: date | None = None

    def add(self, vector: dict[str, float], published: date | None) -> None:
        for term, weight in vector.items():
            self.total[term] = self.total.get(term, 0.0) + weight
        if len(self.total) > 2 * STORY_TERMS:
            kept = sorted(self.total.items(), key=lambda kv: (-kv[1], kv[0]))[:STORY_TERMS]
            self.total = dict(kept)
        if published is not None:
            self.first = min(self.first or published, published)
            self.last = max(self.last or published, published)


class OnlineStorylines:
    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = THRESHOLD if threshold is None else threshold
        self.df: Counter[str] = Counter()
        self.documents = 0
        self.profiles: list[Profile] | None = []  # kept for the replay, up to REPLAY_MAX
        self._reset()

    def _reset(self) -> None:
        self.stories: list[_Story] = []
        self.postings: dict[str, list[int]] = {}
        self.story_of: dict[str, int] = {}

    def add(self, profile: Profile) -> int:
        """Count the document and place it; returns its story's index."""
        if profile.doc_id in self.story_of:  # a redelivered document stays where it is
            return self.story_of[profile.doc_id]
        self.documents += 1
        if self.profiles is not None:
            self.profiles.append(profile)
            if len(self.profiles) > REPLAY_MAX:
                self.profiles = None
        self.df.update(self._terms(profile).keys())
        return self._place(profile, self.vector(profile))

    def groups(self) -> list[list[str]]:
        """The stories so far, each as its documents in the order they came."""
        return [list(s.members) for s in self.stories if s.members]

    def finish(self) -> list[list[str]]:
        """The end-of-batch step: replay with final document frequencies (small batches),
        then merge."""
        if self.profiles is not None:
            self._reset()
            for profile in sorted(self.profiles,
                                  key=lambda p: publication_order(p.published, p.doc_id)):
                self._place(profile, self.vector(profile))
        self._merge()
        return self.groups()

    @staticmethod
    def _terms(profile: Profile) -> dict[str, float]:
        """Term -> sublinear frequency, entity keys weighted up."""
        terms = {w: 1.0 + math.log(c) for w, c in profile.words.items()}
        for key, count in profile.entities.items():
            terms["e:" + key] = ENTITY_WEIGHT * (1.0 + math.log(count))
        return terms

    def vector(self, profile: Profile) -> dict[str, float]:
        n = self.documents
        weighted = {t: tf * (math.log((1 + n) / (1 + self.df[t])) + 1.0)
                    for t, tf in self._terms(profile).items()}
        top = sorted(weighted.items(), key=lambda kv: (-kv[1], kv[0]))[:PROFILE_TERMS]
        norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
        return {t: w / norm for t, w in top}

    def _candidates(self, vector: dict[str, float]) -> list[int]:
        """Stories sharing one of the vector's heaviest terms (vectors are heaviest first)."""
        found: set[int] = set()
        for term in list(vector)[:CANDIDATE_TERMS]:
            found.update(self.postings.get(term, ()))
        return sorted(found)

    def _similarity(self, vector: dict[str, float], published: date | None, story: _Story
                    ) -> float:
        score = _dot(vector, story.total) / len(story.members)
        if published is not None and story.first is not None and story.last is not None:
            gap = max((story.first - published).days, (published - story.last).days, 0)
            if gap > DATE_GAP_DAYS:
                score *= DATE_PENALTY
        return score

    def _place(self, profile: Profile, vector: dict[str, float]) -> int:
        best, best_score = -1, self.threshold
        for index in self._candidates(vector):
            score = self._similarity(vector, profile.published, self.stories[index])
            if score >= best_score:
                best, best_score = index, score
        if best < 0:
            best = len(self.stories)
            self.stories.append(_Story())
        story = self.stories[best]
        story.add(vector, profile.published)
        story.members.append(profile.doc_id)
        self.story_of[profile.doc_id] = best
        for term in vector:
            posting = self.postings.setdefault(term, [])
            if best in posting:
                posting.remove(best)
            posting.append(best)
            del posting[:-POSTINGS]
        return best

    def _linkage(self, a: _Story, b: _Story) -> float:
        """Average linkage of two stories: the dot product of their members' mean profiles,
        weighed down when their dates lie far apart."""
        small, large = (a.total, b.total) if len(a.total) <= len(b.total) else (b.total, a.total)
        score = _dot(small, large)
        score /= len(a.members) * len(b.members)
        if a.first and a.last and b.first and b.last:
            gap = max((a.first - b.last).days, (b.first - a.last).days, 0)
            if gap > DATE_GAP_DAYS:
                score *= DATE_PENALTY
        return score

    def _merge(self) -> None:
        """Merge stories whose average linkage reaches the threshold, closest pairs first,
        among candidates from the inverted index; again until a pass merges nothing."""
        while True:
            pairs = []
            for index, story in enumerate(self.stories):
                if not story.members:
                    continue
                top = sorted(story.total, key=lambda t: (-story.total[t], t))[:PROFILE_TERMS]
                head = {t: story.total[t] for t in top}
                for other in self._candidates(head):
                    target = self.stories[other]
                    if other > index and target.members:
                        # Scored on the story's heaviest terms (a lower bound), checked in
                        # full before the merge.
                        score = _dot(head, target.total)
                        score /= len(story.members) * len(target.members)
                        if score >= self.threshold:
                            pairs.append((-score, index, other))
            moved: dict[int, int] = {}
            for _, a, b in sorted(pairs):
                while a in moved:
                    a = moved[a]
                while b in moved:
                    b = moved[b]
                if a != b and self._linkage(self.stories[a], self.stories[b]) >= self.threshold:
                    self._join(a, b)
                    moved[b] = a
            if not moved:
                return

    def _join(self, into: int, source: int) -> None:
        a, b = self.stories[into], self.stories[source]
        for term, weight in b.total.items():
            a.total[term] = a.total.get(term, 0.0) + weight
        for day in (b.first, b.last):
            if day is not None:
                a.first, a.last = min(a.first or day, day), max(a.last or day, day)
        a.members.extend(b.members)
        for doc in b.members:
            self.story_of[doc] = into
        b.members, b.total = [], {}
        for term in a.total:
            posting = self.postings.setdefault(term, [])
            if into not in posting:
                posting.append(into)
                del posting[:-POSTINGS]
