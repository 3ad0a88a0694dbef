"""The `openai` backend against a fake OpenAI-compatible server on 127.0.0.1: structured
output requests, validation, one retry, the rules fallback, retries with backoff, failure of
a document when the server is down, and the bound on requests in flight."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llm_helpers import FakeModelServer, closed_port, completion
from pydantic import SecretStr

from eventpipe.models import Entity, Triplet
from eventpipe.nlp.events import EventInput, EventsResult, RulesBackend
from eventpipe.nlp.llm import BackendError, LLMBackend, events_schema
from eventpipe.nlp.llm.openai_backend import OpenAIGenerator

Start = Callable[..., FakeModelServer]
KEY = "sk-test-4b1d-never-logged"

ARREST = {
    "events": [
        {
            "trigger": "arrested",
            "type": "justice",
            "participants": [
                {"text": "Police", "role": "agent"},
                {"text": "two men", "role": "patient"},
            ],
            "location": "Lisbon",
            "time": "Sunday",
        }
    ]
}
TEXT = "Storm Brenna hit Lisbon. Police arrested two men in Lisbon on Sunday."


def entity(text: str, label: str) -> Entity:
    start = TEXT.index(text)
    return Entity(text=text, label=label, start_char=start, end_char=start + len(text))


def doc(text: str = TEXT) -> EventInput:
    return EventInput(
        text=text,
        entities=[entity("Lisbon", "GPE"), entity("Sunday", "DATE")],
        triplets=[
            Triplet(subject="Storm Brenna", action="hit", object="Lisbon", end_char=15),
            Triplet(subject="Police", action="arrest", object="two men", sentence=1),
        ],
        sentences=[(0, 24), (25, len(text))],
    )


@pytest.fixture
def backends() -> Iterator[Callable[..., LLMBackend]]:
    made: list[LLMBackend] = []

    def make(url: str, **options: Any) -> LLMBackend:
        options = {"api_key": SecretStr(KEY), "backoff_s": 0.01, **options}
        backend = LLMBackend(OpenAIGenerator(url, "fake-model", **options), prompt="open")
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def is_retry(body: dict[str, Any]) -> bool:
    return len(body["messages"]) > 2


def test_valid_answer_gives_events(
    fake_server: Start, backends: Callable[..., LLMBackend], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = fake_server(lambda body: json.dumps(ARREST))
    (result,) = backends(server.url, max_tokens=300).extract_results([doc()])

    assert isinstance(result, EventsResult)
    assert (result.backend, result.fallback) == ("openai", None)
    (event,) = result.events
    assert (event.trigger, event.type, event.location, event.time) == (
        "arrested",
        "justice",
        "Lisbon",
        "Sunday",
    )
    assert event.source == "openai"
    assert event.sentence == 1  # where "arrested" is
    assert [(p.text, p.role) for p in event.participants] == [
        ("Police", "agent"),
        ("two men", "patient"),
    ]
    (body,) = server.requests
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0 and body["max_tokens"] == 300
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "events", "schema": events_schema(), "strict": True},
    }
    system, user = body["messages"]
    assert system["role"] == "system" and "JSON" in system["content"]
    assert TEXT in user["content"] and "Lisbon (GPE)" in user["content"]
    assert "Police | arrest | two men" in user["content"]
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in caplog.text


def test_json_object_mode_sends_the_schema(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: json.dumps(ARREST))
    backend = backends(server.url, response_format="json_object")
    (result,) = backend.extract_results([doc()])
    assert isinstance(result, EventsResult) and result.backend == "openai"
    assert server.requests[0]["response_format"] == {
        "type": "json_object",
        "schema": events_schema(),
    }


def test_invalid_json_is_retried_once_with_the_error(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: json.dumps(ARREST) if is_retry(body) else '{"events": [')
    (result,) = backends(server.url).extract_results([doc()])

    assert isinstance(result, EventsResult)
    assert (result.backend, result.fallback) == ("openai", None)
    assert [e.trigger for e in result.events] == ["arrested"]
    first, retry = server.requests
    assert retry["messages"][:2] == first["messages"]
    assert retry["messages"][2] == {"role": "assistant", "content": '{"events": ['}
    assert "not valid JSON" in retry["messages"][3]["content"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Sure! Here are the events.", "not valid JSON"),
        ('{"events": [{"trigger": "won"}]}', "does not match the schema at events.0.type"),
        (json.dumps({"events": [{**ARREST["events"][0], "type": "party"}]}), "events.0.type"),
    ],
)
def test_invalid_twice_falls_back_to_rules(
    fake_server: Start, backends: Callable[..., LLMBackend], answer: str, reason: str
) -> None:
    server = fake_server(lambda body: answer)
    (result,) = backends(server.url).extract_results([doc()])

    assert isinstance(result, EventsResult)
    assert result.backend == "rules"
    assert result.fallback is not None
    assert result.fallback.startswith("openai: invalid output after a retry: ")
    assert reason in result.fallback
    assert result.events == RulesBackend().extract(doc())
    assert len(server.requests) == 2


def test_cut_off_answer_is_invalid(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: completion('{"events": [{"trig', "length"))
    (result,) = backends(server.url, max_tokens=16).extract_results([doc()])
    assert isinstance(result, EventsResult) and result.backend == "rules"
    assert "cut off at 16 tokens" in str(result.fallback)
    assert server.requests[1]["messages"][2]["content"] == '{"events": [{"trig'


def test_busy_and_failing_server_is_retried(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    replies = iter([(503, "overloaded"), (429, "slow down", {"Retry-After": "0"})])
    server = fake_server(lambda body: next(replies, json.dumps(ARREST)))
    (result,) = backends(server.url, max_retries=2).extract_results([doc()])
    assert isinstance(result, EventsResult) and result.backend == "openai"
    assert len(server.requests) == 3


def test_server_down_fails_the_document_after_bounded_retries(
    backends: Callable[..., LLMBackend],
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.perf_counter()
    results = backends(url, max_retries=2).extract_results([doc(), doc("Another text.")])
    assert time.perf_counter() - started < 5
    for result in results:
        assert isinstance(result, BackendError)
        assert f"no answer from {url}/chat/completions after 3 attempts" in str(result)
        assert "ConnectError" in str(result)


def test_an_unreachable_server_is_asked_once_per_call(
    backends: Callable[..., LLMBackend],
) -> None:
    """Within one call, the documents after the first that gave up fail at once (they wait
    on the retry topic, not on their own retries): one in flight, 0.2 s of backoff each."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.perf_counter()
    results = backends(url, max_retries=2, max_in_flight=1, backoff_s=0.2).extract_results(
        [doc(f"Text {i}.") for i in range(8)])
    assert all(isinstance(r, BackendError) for r in results)
    # Each of the 8 waiting out its own retries would take 8 x 0.6 s.
    assert time.perf_counter() - started < 0.6 * 4


def test_a_server_back_up_is_asked_at_the_next_call(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    """An outage the previous call met is not held against the next one: a document replayed
    the moment the server is back must be asked, not failed on the old news."""
    port = closed_port()
    backend = backends(f"http://127.0.0.1:{port}/v1", max_retries=0)
    (down,) = backend.extract_results([doc()])
    assert isinstance(down, BackendError) and "ConnectError" in str(down)
    server = fake_server(lambda body: json.dumps(ARREST), port=port)
    (result,) = backend.extract_results([doc()])
    assert isinstance(result, EventsResult) and result.backend == "openai", result
    assert len(server.requests) == 1


def test_persistent_5xx_fails_the_document(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: (500, "model crashed"))
    (result,) = backends(server.url, max_retries=1).extract_results([doc()])
    assert isinstance(result, BackendError)
    assert "after 2 attempts: HTTP 500: 'model crashed'" in str(result)
    assert len(server.requests) == 2


def test_slow_server_times_out(fake_server: Start, backends: Callable[..., LLMBackend]) -> None:
    server = fake_server(lambda body: json.dumps(ARREST), delay_s=1.0)
    (result,) = backends(server.url, timeout_s=0.2, max_retries=0).extract_results([doc()])
    assert isinstance(result, BackendError) and "ReadTimeout" in str(result)


def test_refused_request_is_not_retried(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: (400, '{"error": "response_format not supported"}'))
    (result,) = backends(server.url, max_retries=3).extract_results([doc()])
    assert isinstance(result, BackendError)
    assert "refused the request: HTTP 400" in str(result)
    assert "response_format not supported" in str(result)
    assert len(server.requests) == 1


def test_one_failing_document_leaves_the_others(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    def answer(body: dict[str, Any]) -> Any:
        return (500, "boom") if "poison" in body["messages"][1]["content"] else json.dumps(ARREST)

    server = fake_server(answer)
    results = backends(server.url, max_retries=0).extract_results(
        [doc(), doc("A poison document."), doc()]
    )
    # A 5xx after the retries: the server's trouble (transient), which the stage retries later.
    assert [type(r).__name__ for r in results] == [
        "EventsResult", "BackendUnreachable", "EventsResult"]
    assert len(server.requests) == 3


def test_requests_in_flight_are_bounded(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: json.dumps(ARREST), delay_s=0.1)
    docs = [doc(f"Police arrested {n} men in Lisbon on Sunday.") for n in range(10)]
    results = backends(server.url, max_in_flight=3).extract_results(docs)
    assert all(isinstance(r, EventsResult) and r.backend == "openai" for r in results)
    assert len(server.requests) == 10
    # Bounded, and yet concurrent.
    assert server.max_in_flight == 3


def test_settings_are_required() -> None:
    from eventpipe.settings import Settings

    with pytest.raises(ValueError, match="EVENTPIPE_LLM_BASE_URL"):
        OpenAIGenerator.from_settings(Settings(llm_backend="openai", llm_model="m"))
    with pytest.raises(ValueError, match="http"):
        OpenAIGenerator("localhost:8000/v1", "m")


def test_failure_reasons_never_show_the_urls_credentials(
    fake_server: Start, backends: Callable[..., LLMBackend]
) -> None:
    server = fake_server(lambda body: (400, '{"error": "no"}'))
    host = server.url.split("://", 1)[1]
    (result,) = backends(f"http://user:hunter2@{host}?api_key=tok3n",
                         max_retries=0).extract_results([doc()])
    assert isinstance(result, BackendError) and "refused the request" in str(result)
    assert "hunter2" not in str(result) and "tok3n" not in str(result)
    assert host.split("/")[0] in str(result)
