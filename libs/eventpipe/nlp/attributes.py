"""POS, morphology and lemmas for only the tokens a stage reads.

In en_core_web_sm, ``attribute_ruler`` (a Matcher over every token) and ``lemmatizer`` cost
about a third of the parsing stage's time (measured on 1,000 news documents: 4.95 s and
1.15 s, against 11.3 s for tok2vec, tagger and parser together). The triplets read POS and
lemma of a few verbs per sentence only. `LazyAttributes` applies the same two components to
those tokens alone, with the result the components give them on the whole doc:

- every attribute-ruler pattern is checked at load to be at most two tokens long with no
  operators, so any match that sets a token's attributes lies within one token either side
  of it; windows around the wanted tokens therefore find every such match;
- all matches are found before any is applied, then applied in the ruler's own order (its
  ``set_annotations``), as the ruler does on a whole doc;
- lemmas come from the lemmatizer's own ``lemmatize``, under the condition its ``__call__``
  uses (unset lemma, or ``overwrite``).

A pipeline whose ruler has longer patterns or operators is not windowed: both components
then run over whole docs as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spacy.language import Language
from spacy.pipeline import AttributeRuler, Lemmatizer
from spacy.tokens import Doc

RULER = "attribute_ruler"
LEMMATIZER = "lemmatizer"
MAX_WINDOWED_PATTERN = 2


def windowable(ruler: AttributeRuler) -> bool:
    """Whether every pattern has at most MAX_WINDOWED_PATTERN tokens and no operators."""
    for entry in ruler.patterns:
        patterns: list[list[dict[str, Any]]] = entry["patterns"]  # type: ignore[assignment]
        for pattern in patterns:
            if len(pattern) > MAX_WINDOWED_PATTERN:
                return False
            if any(isinstance(spec, dict) and "OP" in spec for spec in pattern):
                return False
    return True


class LazyAttributes:
    def __init__(self, nlp: Language) -> None:
        self.ruler: AttributeRuler | None = None
        self.lemmatizer: Lemmatizer | None = None
        if RULER not in nlp.pipe_names or LEMMATIZER not in nlp.pipe_names:
            return
        ruler, lemmatizer = nlp.get_pipe(RULER), nlp.get_pipe(LEMMATIZER)
        if (isinstance(ruler, AttributeRuler) and isinstance(lemmatizer, Lemmatizer)
                and nlp.pipe_names.index(RULER) < nlp.pipe_names.index(LEMMATIZER)
                and windowable(ruler)):
            self.ruler, self.lemmatizer = ruler, lemmatizer

    @property
    def skipped(self) -> list[str]:
        """The components this replaces: leave them out of ``nlp.pipe``."""
        return [RULER, LEMMATIZER] if self.ruler is not None else []

    def annotate(self, doc: Doc, wanted: Iterable[int]) -> None:
        """Set POS, morphology and lemma of the tokens at `wanted` (and of nothing that a
        caller should read besides them)."""
        ruler, lemmatizer = self.ruler, self.lemmatizer
        if ruler is None or lemmatizer is None:
            return
        tokens = sorted(set(wanted))
        if not tokens:
            return
        matches = set()
        for start, end in _windows(tokens, len(doc)):
            for match_id, m_start, m_end in ruler.matcher(doc[start:end], allow_missing=True,
                                                          as_spans=False):
                attr_id = int(ruler.vocab.strings[match_id])
                matches.add((attr_id, match_id, start + m_start, start + m_end))
        ruler.set_annotations(doc, sorted(matches))  # type: ignore[no-untyped-call]
        for i in tokens:
            token = doc[i]
            if lemmatizer.overwrite or token.lemma == 0:
                token.lemma_ = lemmatizer.lemmatize(token)[0]


def _windows(tokens: list[int], length: int) -> list[tuple[int, int]]:
    """Merged [start, end) ranges of one token either side of each of `tokens` (sorted)."""
    margin = MAX_WINDOWED_PATTERN - 1
    ranges: list[tuple[int, int]] = []
    for i in tokens:
        start, end = max(0, i - margin), min(length, i + margin + 1)
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges
