"""`eventpipe reprocess`, end to end on the real broker with every service a real process: a
batch processed with the rules backend is reprocessed from the events stage with a language
model (a fake OpenAI-compatible server) into result version 2, kept beside version 1, with
no NER or parse run again; and services SIGKILLed during a reprocess from the parse stage
lose and duplicate nothing."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_helpers import ANSWER, FakeModelServer, cli

from eventpipe.jobs import submit
from eventpipe.models import job_id_for, reprocess_job_id
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import batch_output_path, newest_results_path, results_path
from helpers import corpus_lines, read_results, wait_checkpoint, write_jsonl
from support.processes import kill_service


def openai_settings(settings: Settings, url: str, **more: Any) -> Settings:
    # The open prompt: the fake answers are written for it.
    return settings.model_copy(update={"llm_backend": "openai", "llm_base_url": url,
                                       "llm_model": "fake-model", "llm_prompt": "open",
                                       **more})


def by_id(path: Path) -> dict[str, dict[str, Any]]:
    rows = read_results(path)
    found = {r["id"]: r for r in rows}
    assert len(found) == len(rows), "a document saved twice"
    return found


def test_reprocess_from_llm_with_another_backend_keeps_both_versions(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    batch = "reprocess_llm"
    stack = Stack(settings)  # the rules backend
    stack.start()
    try:
        submit(stack.settings, write_jsonl(tmp_path / "in.jsonl", corpus_lines(8, seed=91)),
               batch)
        cp = wait_checkpoint(stack.settings, job_id_for(batch),
                             lambda c: c["status"] == "COMPLETED", timeout_s=180)
        assert cp["processed_documents"] == 8
    finally:
        stack.stop()
    data = settings.data_dir
    v1 = by_id(results_path(data, batch))
    v1_bytes = results_path(data, batch).read_bytes()
    v1_stats = batch_output_path(data, batch, "batch_stats").read_bytes()
    assert {r["events_backend"] for r in v1.values()} == {"rules"}

    server = fake_server(lambda body: ANSWER)
    stack = Stack(openai_settings(settings, server.url))  # the stack again, another backend
    stack.start()
    try:
        # Nothing may be parsed again: with NER and DP down the reprocess still completes.
        for name in ("ner", "dp"):
            kill_service(stack, name, signal.SIGTERM)
        out = cli(stack.settings, "reprocess", batch, "--from-stage", "llm", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        job2 = reprocess_job_id(batch, 2)
        assert f"job {job2}: reprocessing 8 document(s)" in out.stdout
        assert "into result version 2" in out.stdout and "COMPLETED" in out.stdout
        cp2 = wait_checkpoint(stack.settings, job2, lambda c: c["status"] == "COMPLETED")
        assert (cp2["processed_documents"], cp2["failed_documents"]) == (8, 0)
        assert cp2["metadata"]["result_version"] == 2
        assert cp2["metadata"]["reprocess_of"] == job_id_for(batch)
        assert cp2["metadata"]["from_stage"] == "llm"

        v2 = by_id(results_path(data, batch, 2))
        assert sorted(v2) == sorted(v1)
        assert results_path(data, batch).read_bytes() == v1_bytes  # version 1 kept as it was
        assert batch_output_path(data, batch, "batch_stats").read_bytes() == v1_stats
        assert batch_output_path(data, batch, "batch_stats", 2).exists()
        assert newest_results_path(data, batch) == results_path(data, batch, 2)
        assert len(server.requests) == 8
        for doc_id, new in v2.items():
            old = v1[doc_id]
            assert (new["result_version"], new["job_id"]) == (2, job2)
            assert new["events_backend"] == "openai" and new["events"][0]["trigger"] == "arrested"
            # The saved NER and parse output, untouched: the same model, the same entities.
            assert new["entities"] == old["entities"] and new["triplets"] == old["triplets"]
            assert new["versions"]["models"]["ner"] == old["versions"]["models"]["ner"]
            assert old["versions"]["models"]["llm"] == "rules"
            assert new["versions"]["models"]["llm"].startswith("openai:fake-model")
            assert new["versions"]["schema"] == 1 and new["versions"]["pipeline"]

        status = cli(stack.settings, "status", batch)
        assert status.returncode == 0, status.stderr
        assert "v1 (this job): job " + job_id_for(batch) in status.stdout
        assert f"v2 (newest): job {job2} COMPLETED" in status.stdout
        assert "openai:fake-model" in status.stdout

        again = cli(stack.settings, "reprocess", batch, "--from-stage", "sink")
        assert again.returncode == 2 and "--from-stage" in again.stderr
    finally:
        stack.stop()


def test_services_killed_during_a_reprocess_lose_and_duplicate_nothing(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    server = fake_server(lambda body: ANSWER, delay_s=0.2)
    settings = openai_settings(settings, server.url, stage_batch_size=4)
    batch = "reprocess_kill"
    stack = Stack(settings)
    stack.start()
    try:
        submit(stack.settings, write_jsonl(tmp_path / "in.jsonl", corpus_lines(12, seed=92)),
               batch)
        wait_checkpoint(stack.settings, job_id_for(batch),
                        lambda c: c["status"] == "COMPLETED", timeout_s=180)
        out = cli(stack.settings, "reprocess", job_id_for(batch), "--from-stage", "dp")
        assert out.returncode == 0, out.stdout + out.stderr
        for name in ("dp", "llm", "sink", "checkpoint", "linker"):
            kill_service(stack, name, signal.SIGKILL)
        job2 = reprocess_job_id(batch, 2)
        cp = wait_checkpoint(stack.settings, job2,
                             lambda c: c["status"] == "COMPLETED"
                             and c["processed_documents"] == 12, timeout_s=240, stack=stack)
        assert cp["failed_documents"] == 0
        v2 = by_id(results_path(stack.settings.data_dir, batch, 2))  # each exactly once
        assert len(v2) == 12 and {r["result_version"] for r in v2.values()} == {2}
        assert len(by_id(results_path(stack.settings.data_dir, batch))) == 12
    finally:
        stack.stop()


def settled_count(settings: Settings, job_id: str, quiet_s: float = 3.0) -> int:
    """Once a paused job's in-flight documents drained, its processed count holds still."""
    def count() -> int:
        return int(wait_checkpoint(settings, job_id, lambda c: True)["processed_documents"])

    before, held_since = count(), time.monotonic()
    deadline = held_since + 60.0
    while time.monotonic() - held_since < 1.0:
        assert time.monotonic() < deadline, "the count of a paused reprocess never settled"
        time.sleep(0.1)
        if (now := count()) != before:
            before, held_since = now, time.monotonic()
    watch_until = time.monotonic() + quiet_s
    while time.monotonic() < watch_until:
        assert count() == before, "documents were processed while the reprocess was paused"
        time.sleep(0.1)
    return before


def test_pause_resume_and_stop_work_on_a_reprocess(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    server = fake_server(lambda body: ANSWER, delay_s=0.3)
    settings = openai_settings(settings, server.url, stage_batch_size=2, llm_max_in_flight=1)
    batch = "reprocess_ctl"
    stack = Stack(settings)
    stack.start()
    try:
        submit(stack.settings, write_jsonl(tmp_path / "in.jsonl", corpus_lines(20, seed=93)),
               batch)
        wait_checkpoint(stack.settings, job_id_for(batch),
                        lambda c: c["status"] == "COMPLETED", timeout_s=180)
        job2 = reprocess_job_id(batch, 2)
        assert cli(stack.settings, "reprocess", batch, "--from-stage", "llm").returncode == 0
        wait_checkpoint(stack.settings, job2, lambda c: c["processed_documents"] >= 2)
        paused = cli(stack.settings, "pause", job2)
        assert paused.returncode == 0 and "PAUSED" in paused.stdout, paused.stderr
        held = settled_count(stack.settings, job2)
        assert held < 20
        busy = cli(stack.settings, "reprocess", batch, "--from-stage", "llm")
        assert busy.returncode == 2 and "still being made" in busy.stderr

        resumed = cli(stack.settings, "resume", job2)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        cp = wait_checkpoint(stack.settings, job2, lambda c: c["status"] == "COMPLETED"
                             and c["processed_documents"] == 20, timeout_s=180)
        assert cp["failed_documents"] == 0
        assert len(by_id(results_path(stack.settings.data_dir, batch, 2))) == 20

        # A third version from the newest completed one, stopped for good.
        job3 = reprocess_job_id(batch, 3)
        third = cli(stack.settings, "reprocess", batch, "--from-stage", "llm")
        assert third.returncode == 0 and f"(from job {job2})" in third.stdout, third.stderr
        stopped = cli(stack.settings, "stop", job3)
        assert stopped.returncode == 0 and "STOPPED" in stopped.stdout, stopped.stderr
        assert cli(stack.settings, "resume", job3).returncode == 2
    finally:
        stack.stop()
