"""The language-model response cache, against a local chat-completions server that counts the
requests it gets: the same request is sent once, whatever asks again."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import FakeModelServer

from eventpipe.models import Entity
from eventpipe.nlp.events import EventInput, EventsResult
from eventpipe.nlp.llm import LLMBackend, llm_backend
from eventpipe.nlp.llm.cache import LLM_CACHE, ResponseCache
from eventpipe.nlp.llm.openai_backend import OpenAIGenerator
from eventpipe.settings import Settings

ANSWER = json.dumps({"events": [{
    "trigger": "arrested", "type": "justice",
    "participants": [{"text": "Police", "role": "agent"}], "location": "Lisbon", "time": None}]})


def doc(text: str = "Police arrested two men in Lisbon.") -> EventInput:
    return EventInput(text, [Entity(text="Lisbon", label="GPE", start_char=27, end_char=33)],
                      [], [(0, len(text))])


MADE: list[LLMBackend] = []


@pytest.fixture(autouse=True)
def _close_backends() -> Iterator[None]:
    yield
    while MADE:
        MADE.pop().close()


def backend(url: str, cache_dir: Path, model: str = "fake-model") -> LLMBackend:
    made = LLMBackend(OpenAIGenerator(url, model, backoff_s=0.01),
                      ResponseCache(cache_dir, "openai"), prompt="open")
    MADE.append(made)
    return made


def test_a_request_answered_before_is_not_sent_again(
    fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    server = fake_server(lambda body: ANSWER)
    hits_before = LLM_CACHE.labels("openai", "hit")._value.get()
    first = backend(server.url, tmp_path)
    results = first.extract_results([doc(), doc("Another text about Lisbon police.")])
    assert all(isinstance(r, EventsResult) and r.backend == "openai" for r in results)
    assert len(server.requests) == 2 and first.cache is not None
    assert first.cache.hit_rate == 0.0
    # A new process (a replay, a redelivery after a crash) with the same model and prompt.
    again = backend(server.url, tmp_path)
    repeated = again.extract_results([doc(), doc("A third, new text.")])
    assert len(server.requests) == 3  # only the new text was sent
    assert repeated[0] == results[0]
    assert again.cache is not None and again.cache.hit_rate == 0.5
    assert LLM_CACHE.labels("openai", "hit")._value.get() == hits_before + 1
    # Another model is another answer.
    backend(server.url, tmp_path, model="other-model").extract_results([doc()])
    assert len(server.requests) == 4


def test_invalid_answers_are_not_cached(
    fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    answers = iter(['{"events": "none"}', '{"events": "none"}', ANSWER])

    def answer(body: dict[str, Any]) -> str:
        return next(answers)

    server = fake_server(answer)
    (fell_back,) = backend(server.url, tmp_path).extract_results([doc()])
    assert isinstance(fell_back, EventsResult) and fell_back.backend == "rules"
    (valid,) = backend(server.url, tmp_path).extract_results([doc()])
    assert isinstance(valid, EventsResult) and valid.backend == "openai"
    assert len(server.requests) == 3
    assert not list(tmp_path.glob("*/.tmp-*"))  # written whole, by rename


def test_cache_from_settings(fake_server: Callable[..., FakeModelServer], tmp_path: Path
                             ) -> None:
    server = fake_server(lambda body: ANSWER)
    settings = Settings(llm_base_url=server.url, llm_model="fake-model", llm_cache=True,
                        data_dir=tmp_path / "data", llm_prompt="open")
    for _ in range(2):
        made = llm_backend("openai", settings)
        made.extract_results([doc()])
        made.close()
    assert len(server.requests) == 1
    assert list((tmp_path / "data" / "cache" / "llm").glob("*/*.json"))
    off = llm_backend("openai", settings.model_copy(update={"llm_cache": False}))
    assert off.cache is None
    off.close()


def test_with_a_database_the_cache_is_shared_through_postgresql(
    fake_server: Callable[..., FakeModelServer], pg_dsn: str, tmp_path: Path
) -> None:
    """Two workers on different machines (here: two backends, no shared folder) share one
    cache when PostgreSQL is configured."""
    from pydantic import SecretStr

    server = fake_server(lambda body: ANSWER)
    settings = Settings(data_dir=tmp_path / "a", llm_cache=True, llm_base_url=server.url,
                        llm_model="fake-model", postgres_dsn=SecretStr(pg_dsn),
                        llm_prompt="open")
    first = llm_backend("openai", settings)
    MADE.append(first)
    assert type(first.cache).__name__ == "DatabaseResponseCache"
    (result,) = first.extract_results([doc()])
    assert isinstance(result, EventsResult) and len(server.requests) == 1
    other = llm_backend("openai", settings.model_copy(update={"data_dir": tmp_path / "b"}))
    MADE.append(other)
    (again,) = other.extract_results([doc()])
    assert again == result and len(server.requests) == 1
    assert other.cache is not None and other.cache.hit_rate == 1.0
    assert not (tmp_path / "a" / "cache").exists()  # nothing on disk
