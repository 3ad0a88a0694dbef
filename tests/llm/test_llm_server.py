"""llama.cpp's server as a process of the local stack (`eventpipe up --llm-server MODEL.gguf`,
EVENTPIPE_LLM_SERVER_MODEL): documents through every service on the real broker get their
events from SmolLM2 behind it. Slow: the server is built by `make llm-server` (tens of
minutes on two cores) and the model answers in seconds per document."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from eventpipe.errors import UsageError
from eventpipe.jobs import submit
from eventpipe.models import job_id_for
from eventpipe.nlp.llm import server as llm_server
from eventpipe.processes import pid_alive
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import read_results, wait_checkpoint, write_jsonl
from support.needs import service_missing

pytestmark = pytest.mark.slow

NEWS = [
    "Police arrested two men in Lisbon on Sunday after a series of break-ins at jewellery "
    "shops. A spokesman said both were charged with burglary.",
    "The board of Kestrel Bank approved the takeover of Orion Capital on Monday. The deal "
    "values Orion at 2 billion euros, the bank announced.",
    "Storm Brenna hit the coast of Portugal on Tuesday, flooding hundreds of homes. Rescue "
    "teams evacuated 300 people from the town of Aveiro.",
]


def test_the_stack_takes_events_from_its_llama_server(
    settings: Settings, smollm2_gguf: Path, tmp_path: Path
) -> None:
    try:
        llm_server.server_binary(settings)
    except UsageError as exc:
        service_missing(str(exc))
    stack = Stack(settings.model_copy(update={"llm_server_model": smollm2_gguf}))
    # The events stage is pointed at the server the stack starts.
    assert (stack.settings.llm_backend, stack.settings.llm_model) == ("openai", smollm2_gguf.stem)
    assert stack.settings.llm_base_url == llm_server.base_url(stack.settings.llm_server_port or 0)
    batch = "llama_server_batch"
    stack.start()
    try:
        server = stack.procs["llm_server"]
        models = httpx.get(f"{stack.settings.llm_base_url}/models", timeout=5).json()
        assert smollm2_gguf.stem in json.dumps(models)
        lines = [json.dumps({"id": f"news-{n}", "text": text}) for n, text in enumerate(NEWS)]
        submit(stack.settings, write_jsonl(tmp_path / "news.jsonl", lines), batch)
        cp = wait_checkpoint(stack.settings, job_id_for(batch),
                             lambda c: c["status"] in ("COMPLETED", "FAILED"), timeout_s=600)
        assert (cp["status"], cp["processed_documents"]) == ("COMPLETED", len(NEWS))
        results = read_results(results_path(stack.settings.data_dir, batch))
        # Constrained to the schema, the small model's answers finish: none falls back.
        assert [(r["events_backend"], r["events_fallback"]) for r in results] == [
            ("openai", None)] * len(NEWS)
        assert any(r["events"] for r in results)
        assert all(e["source"] == "openai" for r in results for e in r["events"])
        stats = json.loads((stack.settings.data_dir / f"batch_stats_{batch}.json").read_text())
        assert stats["events_by_backend"] == {"openai": len(NEWS)}
    finally:
        stack.stop()
    assert not pid_alive(server.pid, server.cmdline_mark, server.started)
