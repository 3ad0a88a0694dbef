"""Canonical keys of named entities, so that "Vodafone's" and "VODAFONE", or "Lohan" and
"Lindsay Lohan", meet across documents.

A key is lowercase words without a leading article, possessive or trailing punctuation;
people are keyed by surname (news names someone in full once, then by surname, and other
articles may never give the first name); a few well-known aliases map to one form. Pronouns
and bare titles are never keys: they say nothing about which story a document tells."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:[.&'-][a-z0-9]+)*")
_ARTICLES = frozenset({"the", "a", "an"})
_HONORIFICS = frozenset({"mr", "mrs", "ms", "dr", "sir", "president", "judge", "gov", "sen",
                         "rep", "prof", "rev", "lt", "gen", "col", "capt", "sgt"})
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
PRONOUNS = frozenset({
    "i", "me", "my", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "it",
    "its", "they", "them", "their", "this", "that", "these", "those", "who", "which", "what",
    "someone", "anyone", "everyone", "one"})
# Spellings of the same name that newswire uses interchangeably.
ALIASES = {
    "u.s": "united states", "u.s.": "united states", "us": "united states",
    "usa": "united states", "u.s.a": "united states", "america": "united states",
    "u.k": "united kingdom", "uk": "united kingdom", "britain": "united kingdom",
    "great britain": "united kingdom", "u.n": "united nations", "un": "united nations",
    "nyc": "new york city", "la": "los angeles", "l.a": "los angeles",
}
# Labels whose entities name something; numbers, amounts and dates do not make keys.
KEYED_LABELS = frozenset({"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT",
                          "WORK_OF_ART", "LAW"})


def entity_key(text: str, label: str | None = None) -> str | None:
    """The canonical key of one entity mention, or None when it names nothing (a pronoun,
    a number, a bare title)."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    words = [w[:-2] if w.endswith("'s") else w.rstrip("'") for w in words]
    while words and words[0] in _ARTICLES:
        words = words[1:]
    if label == "PERSON":
        while len(words) > 1 and words[0].rstrip(".") in _HONORIFICS:
            words = words[1:]
        while len(words) > 1 and words[-1].rstrip(".") in _SUFFIXES:
            words = words[:-1]
        words = words[-1:]  # the surname
    key = " ".join(w for w in words if w)
    if not key or key in PRONOUNS or key.isdigit() or len(key) < 2:
        return None
    return ALIASES.get(key, key)
