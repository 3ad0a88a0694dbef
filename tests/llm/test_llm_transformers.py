"""The `transformers` backend with a tiny random model: batched generation with left
padding, decoding constrained to the events schema (random content, valid every time), the
cut-off fallback, and loading a .gguf file through the converted-model cache."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from llm_helpers import build_tiny_gguf

from eventpipe.models import Triplet
from eventpipe.nlp.events import EventInput, EventsResult, RulesBackend
from eventpipe.nlp.llm import InvalidOutput, LLMBackend, events_schema, parse_events
from eventpipe.nlp.llm.prompt import build_messages
from eventpipe.nlp.llm.transformers_backend import TransformersGenerator, gguf_cache_dir

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("xgrammar")

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "events-llm.schema.json"
TEXTS = [
    "Police arrested two men in Lisbon on Sunday.",
    "The board of Kestrel Bank approved the merger with Orion Capital.",
    "",
    "Storm Brenna hit Lisbon on Monday, damaging hundreds of homes along the coast. "
    "Rescue teams evacuated residents of three villages overnight.",
    "Maria Lopez said the talks would resume in Geneva next week.",
    "Ajax beat Feyenoord 3-1.",
    "Shares rose.",
]


@pytest.fixture(scope="module")
def generator(tiny_model: Path) -> Iterator[TransformersGenerator]:
    # A batch size that does not divide the documents: a short last batch too.
    made = TransformersGenerator(tiny_model, batch_size=3, max_new_tokens=1024)
    yield made
    made.close()


def docs() -> list[EventInput]:
    return [EventInput(text, [], [], []) for text in TEXTS]


def parsed_docs() -> list[EventInput]:
    """The texts with a triplet each where they have a verb in second place: the candidates
    prompt asks the model about triplets only."""
    out = []
    for text in TEXTS:
        words = text.split()
        if len(words) < 3:
            out.append(EventInput(text, [], [], []))
            continue
        start = text.index(words[1])
        triplet = Triplet(subject=words[0], action=words[1].lower(), object=words[2],
                          start_char=start, end_char=start + len(words[1]))
        out.append(EventInput(text, [], [triplet], [(0, len(text))]))
    return out


def test_constrained_output_is_valid_for_every_document(
    generator: TransformersGenerator,
) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    answers = generator.generate([build_messages(d) for d in docs()], events_schema())

    assert len(answers) == len(TEXTS)
    events = 0
    for answer in answers:
        assert isinstance(answer, str), answer
        validator.validate(json.loads(answer))  # strict JSON: no raw control characters
        events += len(parse_events(answer).events)
    assert events > 0  # the grammar made the model say something, not just {"events": []}


def test_batching_and_padding_do_not_change_an_answer(generator: TransformersGenerator) -> None:
    requests = [build_messages(d) for d in docs()]
    together = generator.generate(requests, events_schema())
    alone = [generator.generate([request], events_schema())[0] for request in requests]
    assert together == alone


def test_backend_gives_events_from_the_model(generator: TransformersGenerator) -> None:
    results = LLMBackend(generator).extract_results(parsed_docs())
    for result in results:
        assert isinstance(result, EventsResult)
        assert (result.backend, result.fallback) == ("transformers", None)
        assert all(event.source == "transformers" for event in result.events)


def test_cut_off_answers_fall_back_to_rules(tiny_model: Path) -> None:
    short = TransformersGenerator(tiny_model, batch_size=4, max_new_tokens=8)
    inputs = docs()
    results = LLMBackend(short, prompt="open").extract_results(inputs)
    rules = RulesBackend()
    for result, doc in zip(results, inputs, strict=True):
        assert isinstance(result, EventsResult)
        assert result.backend == "rules"
        assert result.fallback == (
            "transformers: invalid output after a retry: cut off at 8 new tokens "
            "(EVENTPIPE_LLM_MAX_NEW_TOKENS)"
        )
        assert result.events == rules.extract(doc)


def test_answers_over_the_time_budget_fall_back_at_once(tiny_model: Path) -> None:
    slow = TransformersGenerator(tiny_model, batch_size=4, time_budget_s=1e-6)
    inputs = parsed_docs()
    results = LLMBackend(slow).extract_results(inputs)
    asked = [doc for doc in inputs if doc.triplets]
    assert len(asked) >= 4
    for result, doc in zip(results, inputs, strict=True):
        assert isinstance(result, EventsResult)
        if not doc.triplets:
            assert (result.backend, result.events) == ("transformers", [])
            continue
        assert result.backend == "rules"
        assert result.fallback == (
            "transformers: over the time budget of 1e-06 s (EVENTPIPE_LLM_TIME_BUDGET_S)"
        )
        assert result.events == RulesBackend().extract(doc)


def test_device_is_chosen_automatically(generator: TransformersGenerator) -> None:
    import torch

    assert generator.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert generator.model.device.type == generator.device


def test_a_model_is_a_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="EVENTPIPE_LLM_MODEL: no model at"):
        TransformersGenerator(tmp_path / "HuggingFaceTB" / "SmolLM2-135M-Instruct")


def test_gguf_cache_key_follows_the_file(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF one")
    first = gguf_cache_dir(gguf, tmp_path / "cache")
    assert first == gguf_cache_dir(gguf, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" and first.name.startswith("model-")
    gguf.write_bytes(b"GGUF two, longer")
    os.utime(gguf, ns=(1, 1))
    assert gguf_cache_dir(gguf, tmp_path / "cache") != first


def test_gguf_is_converted_once_then_loaded_from_the_cache(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    gguf = build_tiny_gguf(tmp_path)
    cache = tmp_path / "cache"
    first = TransformersGenerator(gguf, max_new_tokens=16, cache_dir=cache)
    (converted,) = cache.iterdir()
    assert converted == gguf_cache_dir(gguf, cache)
    assert (converted / "config.json").is_file()
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    stamp = (converted / "config.json").stat().st_mtime_ns

    again = TransformersGenerator(gguf, max_new_tokens=16, cache_dir=cache)
    assert (converted / "config.json").stat().st_mtime_ns == stamp  # read, not rewritten
    request = build_messages(EventInput("Police arrested two men.", [], [], []))
    texts = []
    for generator in (first, again):
        (answer,) = generator.generate([request], events_schema())
        # A random model runs out of tokens; what it wrote is the schema's JSON so far.
        texts.append(answer.output if isinstance(answer, InvalidOutput) else answer)
    assert texts[0] == texts[1]
    assert isinstance(texts[0], str) and texts[0].startswith('{"events": [')


def test_a_released_model_is_loaded_again_with_the_same_answers(tiny_model: Path) -> None:
    made = TransformersGenerator(tiny_model, batch_size=4, max_new_tokens=256)
    requests = [build_messages(d) for d in docs()[:3]]
    before = made.generate(requests, events_schema())
    LLMBackend(made).release()
    assert made.model is None
    assert made.generate(requests, events_schema()) == before
    assert made.model is not None
    made.close()
