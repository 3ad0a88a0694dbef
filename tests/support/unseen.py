"""News-like documents full of strings no document before them used: invented names,
companies, places, product codes, figures and links, as a real news stream has. Every
document draws fresh words from a counter, so a pipeline that keeps each string it meets
grows with every document (what `bench/soak.py` and tests/nlp/test_nlp_memory.py check
it does not)."""

from __future__ import annotations

import random
from collections.abc import Iterator

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "kl", "l", "m", "n", "p",
           "pr", "r", "s", "st", "t", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "n", "r", "s", "l", "th", "x", "nd", "rk")

_TEMPLATES = (
    "{person} , chief executive of {company} , said on {day} that the company would buy "
    "{company2} for {money} . The deal , announced in {place} , values {company2} at "
    "{figure} times its earnings . Details were posted at {link} .",
    "Police in {place} arrested {person} after a fire destroyed the {company} warehouse "
    "on {day} . Investigators said the blaze caused {money} in damage . {person2} , a "
    "spokesman , said shipment {code} was lost .",
    "{company} launched the {code} on {day} in {place} . {person} told reporters the device "
    "would cost {money} . Analysts at {company2} expect sales of {figure} units , according "
    "to a note published at {link} .",
    "Voters in {place} elected {person} as mayor on {day} , defeating {person2} . Turnout "
    "reached {figure} percent . The campaign of {person} spent {money} , filings with "
    "{company} show .",
    "{person} signed a contract with {company} worth {money} on {day} . The agreement , "
    "reference {code} , covers {figure} sites near {place} . {person2} criticized the deal .",
)


class UnseenWords:
    """Pronounceable words that never repeat: a counter spelled in syllables. Streams of
    different seeds start their counters far apart, so they share no words either."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = seed * 10_000_019

    def word(self) -> str:
        self.count += 1
        n, parts = self.count, []
        while True:
            n, digit = divmod(n, len(_ONSETS) * len(_VOWELS))
            onset, vowel = divmod(digit, len(_VOWELS))
            parts.append(_ONSETS[onset] + _VOWELS[vowel])
            if n == 0:
                break
        parts.append(self.rng.choice(_CODAS))
        return "".join(parts)

    def name(self) -> str:
        return self.word().capitalize()


def unseen_documents(n: int, seed: int = 11, start: int = 0) -> Iterator[dict[str, str]]:
    """`n` documents with ids `u{start}`..; each a few sentences of fresh strings."""
    words = UnseenWords(seed)
    rng = words.rng
    for i in range(start, start + n):
        sentences = []
        for template in rng.sample(_TEMPLATES, 3):
            sentences.append(template.format(
                person=f"{words.name()} {words.name()}",
                person2=f"{words.name()} {words.name()}",
                company=f"{words.name()} {rng.choice(('Corp', 'Holdings', 'Labs', 'Group'))}",
                company2=f"{words.name()}{words.word()}",
                place=words.name(),
                day=rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")),
                money=f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d} million",
                figure=f"{rng.randint(1000, 999999):,}",
                code=f"{words.word().upper()}-{rng.randint(100, 99999)}",
                link=f"https://{words.word()}.example/{words.word()}/{i}",
            ))
        yield {"id": f"u{i}", "text": " ".join(sentences)}
