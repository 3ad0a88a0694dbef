"""Documents grouped into stories incrementally, as they are saved.

Each document becomes a sparse profile: its salient words and the canonical keys of its
named entities, weighted by TF-IDF (document frequencies counted over the documents seen so
far) and cut to its `PROFILE_TERMS` heaviest terms. A new document joins the story whose
members it is closest to on average (average linkage: the dot product with the mean of the
members' profiles) when that is at least the threshold, else it starts a story of its own.
Candidate stories come from an inverted index over profile terms, each term keeping only its
`POSTINGS` most recent stories, so the work per document is bounded whatever the number of
documents: no pair of all documents is ever compared.

`finish` is the end-of-batch step: it rebuilds the profiles with the final document
frequencies (the first documents of a batch were weighed against few others), replays the
same assignment in the same order, then merges stories whose average linkage reaches the
threshold. It is linear in the documents too.

Publication dates keep similar stories apart: a document published long before or after
every member of a story weighs against it (`DATE_GAP_DAYS`, `DATE_PENALTY`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from spacy.lang.en.stop_words import STOP_WORDS

from eventpipe.nlp.keys import KEYED_LABELS, entity_key

THRESHOLD = 0.12
ENTITY_WEIGHT = 1.5
PROFILE_TERMS = 80
POSTINGS = 40
DATE_GAP_DAYS = 90
DATE_PENALTY = 0.5
_TOKEN = re.compile(r"[a-z][a-z0-9]+(?:[.'-][a-z0-9]+)*|\d{4}")
# Reporting verbs and newswire boilerplate are in nearly every article of every story.
_NOISE = frozenset(STOP_WORDS) | {
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
        if published is not None:
            self.first = min(self.first or published, published)
            self.last = max(self.last or published, published)


class OnlineStorylines:
    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = THRESHOLD if threshold is None else threshold
        self.df: Counter[str] = Counter()
        self.profiles: list[Profile] = []
        self._reset()

    def _reset(self) -> None:
        self.stories: list[_Story] = []
        self.postings: dict[str, list[int]] = {}
        self.story_of: dict[str, int] = {}

    def add(self, profile: Profile) -> int:
        """Count the document and place it; returns its story's index."""
        if profile.doc_id in self.story_of:  # a redelivered document stays where it is
            return self.story_of[profile.doc_id]
        self.profiles.append(profile)
        self.df.update(self._terms(profile).keys())
        return self._place(profile, self.vector(profile))

    def groups(self) -> list[list[str]]:
        """The stories so far, each as its documents in the order they came."""
        return [list(s.members) for s in self.stories if s.members]

    def finish(self) -> list[list[str]]:
        """The end-of-batch step: replay with final document frequencies, then merge."""
        self._reset()
        for profile in self.profiles:
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
        n = len(self.profiles)
        weighted = {t: tf * (math.log((1 + n) / (1 + self.df[t])) + 1.0)
                    for t, tf in self._terms(profile).items()}
        top = sorted(weighted.items(), key=lambda kv: (-kv[1], kv[0]))[:PROFILE_TERMS]
        norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
        return {t: w / norm for t, w in top}

    def _candidates(self, vector: dict[str, float]) -> list[int]:
        found: set[int] = set()
        for term in vector:
            found.update(self.postings.get(term, ()))
        return sorted(found)

    def _similarity(self, vector: dict[str, float], published: date | None, story: _Story
                    ) -> float:
        score = sum(w * story.total.get(t, 0.0) for t, w in vector.items()) / len(story.members)
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

    def _merge(self) -> None:
        """Average-linkage merging of stories, closest pair first, among candidates from the
        inverted index, until no pair reaches the threshold."""
        while True:
            best, best_score = (-1, -1), self.threshold
            for index, story in enumerate(self.stories):
                if not story.members:
                    continue
                top = sorted(story.total.items(), key=lambda kv: (-kv[1], kv[0]))
                mean = {t: w / len(story.members) for t, w in top[:PROFILE_TERMS]}
                for other in self._candidates(mean):
                    target = self.stories[other]
                    if other <= index or not target.members:
                        continue
                    date_of = story.first if story.first == story.last else None
                    score = self._similarity(mean, date_of, target)
                    if score >= best_score:
                        best, best_score = (other, index), score
            if best[0] < 0:
                return
            self._join(*best)

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
