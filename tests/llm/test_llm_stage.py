"""The events stage's process function with each backend, made from settings the way the
service makes it: `make_process(build_backend(settings))`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import FakeModelServer, closed_port

from eventpipe.models import DocumentMessage, Entity, Triplet, job_id_for
from eventpipe.nlp.events import EventInput, RulesBackend, build_backend, get_backend
from eventpipe.nlp.llm import BackendError, LLMBackend
from eventpipe.settings import Settings
from services.llm.service import make_process

Start = Callable[..., FakeModelServer]
TEXT = "Police arrested two men in Lisbon on Sunday."
ANSWER = json.dumps(
    {
        "events": [
            {
                "trigger": "arrested",
                "type": "justice",
                "participants": [{"text": "Police", "role": "agent"}],
                "location": "Lisbon",
                "time": "Sunday",
            }
        ]
    }
)


def documents(texts: list[str]) -> list[DocumentMessage]:
    docs = []
    for n, text in enumerate(texts):
        at = text.find("Lisbon")
        docs.append(
            DocumentMessage(
                job_id=job_id_for("batch"),
                batch_id="batch",
                doc_id=f"d{n}",
                text=text,
                entities=[Entity(text="Lisbon", label="GPE", start_char=at, end_char=at + 6)]
                if at >= 0
                else [],
                triplets=[Triplet(subject="Police", action="arrest", object="two men")],
                sentences=[(0, len(text))],
            )
        )
    return docs


def rules_events(doc: DocumentMessage) -> list[Any]:
    return RulesBackend().extract(EventInput(doc.text, doc.entities, doc.triplets, doc.sentences))


def run_stage(settings: Settings, texts: list[str]) -> list[DocumentMessage | Exception]:
    backend = build_backend(settings)
    try:
        return list(make_process(backend)(documents(texts)))
    finally:
        if isinstance(backend, LLMBackend):
            backend.close()


def test_rules() -> None:
    arrest, empty = run_stage(Settings(llm_backend="rules"), [TEXT, ""])
    for result in (arrest, empty):
        assert isinstance(result, DocumentMessage)
        assert (result.events_backend, result.events_fallback) == ("rules", None)
        assert result.events == rules_events(result)
    assert isinstance(arrest, DocumentMessage)
    assert [e.type for e in arrest.events] == ["justice"]


def test_transformers(tiny_model: Path) -> None:
    settings = Settings(
        llm_backend="transformers",
        llm_model=str(tiny_model),
        llm_batch_size=2,
        llm_max_new_tokens=1024,
    )
    results = run_stage(settings, [TEXT, "", "Kestrel Bank bought Orion Capital."])
    for result in results:
        assert isinstance(result, DocumentMessage)
        assert (result.events_backend, result.events_fallback) == ("transformers", None)
        assert all(event.source == "transformers" for event in result.events)


def test_openai(fake_server: Start) -> None:
    server = fake_server(lambda body: ANSWER)
    settings = Settings(
        llm_backend="openai", llm_base_url=server.url, llm_model="fake", llm_prompt="open"
    )
    results = run_stage(settings, [TEXT, TEXT])
    for result in results:
        assert isinstance(result, DocumentMessage)
        assert (result.events_backend, result.events_fallback) == ("openai", None)
        (event,) = result.events
        assert (event.trigger, event.source, event.location) == ("arrested", "openai", "Lisbon")
        assert event.participants[0].text == "Police"


def test_openai_fallback_is_recorded_on_the_document(fake_server: Start) -> None:
    server = fake_server(lambda body: '{"events": "none"}')
    settings = Settings(
        llm_backend="openai", llm_base_url=server.url, llm_model="fake", llm_prompt="open"
    )
    (result,) = run_stage(settings, [TEXT])
    assert isinstance(result, DocumentMessage)
    assert result.events_backend == "rules"
    assert str(result.events_fallback).startswith("openai: invalid output after a retry: ")
    assert result.events == rules_events(result) and result.events


def test_server_down_fails_each_document_not_the_batch() -> None:
    settings = Settings(
        llm_backend="openai",
        llm_base_url=f"http://127.0.0.1:{closed_port()}/v1",
        llm_model="fake",
        llm_max_retries=0,
    )
    results = run_stage(settings, [TEXT, TEXT])
    assert len(results) == 2
    for result in results:
        assert isinstance(result, BackendError)
        assert "no answer from" in str(result) and "after 1 attempt:" in str(result)


def test_one_document_fails_alone(fake_server: Start) -> None:
    def answer(body: dict[str, Any]) -> Any:
        return (503, "down") if "Ajax" in body["messages"][1]["content"] else ANSWER

    server = fake_server(answer)
    settings = Settings(
        llm_backend="openai",
        llm_base_url=server.url,
        llm_model="fake",
        llm_max_retries=0,
        llm_prompt="open",
    )
    first, failed, last = run_stage(settings, [TEXT, "Ajax beat Feyenoord.", TEXT])
    assert isinstance(failed, BackendError)
    assert isinstance(first, DocumentMessage) and first.events_backend == "openai"
    assert isinstance(last, DocumentMessage) and last.events_backend == "openai"


def test_backends_need_their_settings() -> None:
    with pytest.raises(ValueError, match="needs EVENTPIPE_LLM_MODEL"):
        build_backend(Settings(llm_backend="transformers"))
    with pytest.raises(ValueError, match="needs EVENTPIPE_LLM_BASE_URL"):
        build_backend(Settings(llm_backend="openai", llm_model="m"))
    with pytest.raises(ValueError, match="known backends: rules, transformers, openai"):
        get_backend("gpt")
