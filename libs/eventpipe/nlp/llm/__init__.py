"""The events stage's language-model backends: `transformers` (a local model) and `openai`
(any OpenAI-compatible server), each behind `LLMBackend`'s validation, retry and rules
fallback. Each backend module is imported only when chosen, so the base install, without
torch, still has the `rules` and `openai` backends."""

from __future__ import annotations

from eventpipe.nlp.llm.base import (
    BackendError,
    BackendUnreachable,
    Generator,
    InvalidOutput,
    LLMBackend,
    events_schema,
    parse_events,
    schema_file_text,
)
from eventpipe.nlp.llm.cache import DatabaseResponseCache, ResponseCache
from eventpipe.settings import Settings

__all__ = [
    "BackendError",
    "BackendUnreachable",
    "Generator",
    "InvalidOutput",
    "LLMBackend",
    "build_openai",
    "build_transformers",
    "events_schema",
    "llm_backend",
    "make_generator",
    "parse_events",
    "schema_file_text",
]


def make_generator(name: str, settings: Settings) -> Generator:
    if name == "openai":
        from eventpipe.nlp.llm.openai_backend import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings)
    if name == "transformers":
        from eventpipe.nlp.llm.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_settings(settings)
    raise ValueError(f"unknown language-model backend {name!r}; known: transformers, openai")


def llm_backend(name: str, settings: Settings) -> LLMBackend:
    cache: ResponseCache | None = None
    if settings.llm_cache and settings.postgres_dsn is not None and not settings.llm_cache_dir:
        dsn = settings.postgres_dsn.get_secret_value()
        if settings.postgres_migrate:
            from eventpipe.storage.pg_migrate import migrate

            migrate(dsn)  # the cache's table; locked, so racing the sink's migration is safe
        cache = DatabaseResponseCache(dsn, name)
    elif settings.llm_cache:
        directory = settings.llm_cache_dir or settings.data_dir / "cache" / "llm"
        cache = ResponseCache(directory, name)
    return LLMBackend(make_generator(name, settings), cache, prompt=settings.llm_prompt)


# The factories `eventpipe.nlp.events.BACKENDS` names.
def build_transformers(settings: Settings) -> LLMBackend:
    return llm_backend("transformers", settings)


def build_openai(settings: Settings) -> LLMBackend:
    return llm_backend("openai", settings)
