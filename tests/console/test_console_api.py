"""The console's API in-process: tokens and scopes, problem+json answers, the CLI's refusal
rules, size limits, uploads, and the batch-level results read from the data directory."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from console_helpers import (
    CONTROL,
    CONTROL_TOKEN,
    READ,
    console_settings,
    write_batch_outputs,
    write_job,
)
from fastapi.testclient import TestClient

from eventpipe.api.tokens import Scope, Tokens, token_path
from eventpipe.errors import Refused
from eventpipe.inbox import inbox_dir
from eventpipe.jobs import send_control
from eventpipe.models import ControlCommand, job_id_for
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import batch_output_path
from services.console.app import create_app

PROBLEM = "application/problem+json"


def api_operations(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/api/v1/openapi.json").json()
    return [(method.upper(), path.replace("{job}", "some-batch"))
            for path, item in spec["paths"].items() for method in item]


def test_a_token_is_generated_once_into_the_data_dir_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Tokens.load(settings)
    path = token_path(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Tokens.load(settings) == first  # read back, never replaced
    assert first.scope(path.read_text().strip()) is Scope.CONTROL
    assert first.scope("guess") is None and first.scope("") is None
    path.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        Tokens.load(settings)


def test_every_api_operation_is_401_without_a_valid_token(client: TestClient) -> None:
    operations = api_operations(client)
    assert len(operations) >= 10
    for method, path in operations:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eA=="}):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["www-authenticate"].startswith("Bearer")
    # The page, its assets, the description and the probes need no token.
    for path in ("/", "/static/console.js", "/api/v1/openapi.json", "/healthz", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_the_read_only_token_reads_and_cannot_control(client: TestClient,
                                                      offline: Settings) -> None:
    job = write_job(offline, "ro_batch", "RUNNING")
    before = (offline.checkpoint_dir / f"{job}.json").read_bytes()
    assert client.get("/api/v1/jobs", headers=READ).status_code == 200
    assert client.get(f"/api/v1/jobs/{job}", headers=READ).json()["status"] == "RUNNING"
    for command in ("pause", "resume", "stop"):
        r = client.post(f"/api/v1/jobs/{job}/{command}", headers=READ)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        assert "read-only" in r.json()["detail"]
    r = client.post("/api/v1/jobs", headers={**READ, "Content-Type": "application/x-ndjson"},
                    content=b'{"id": 1, "text": "x"}\n')
    assert r.status_code == 403
    assert (offline.checkpoint_dir / f"{job}.json").read_bytes() == before
    assert not inbox_dir(offline).exists()


def test_refusals_are_409_with_the_cli_message(client: TestClient, offline: Settings) -> None:
    done = write_job(offline, "done_batch", "COMPLETED", processed=5)
    stopped = write_job(offline, "stopped_batch", "STOPPED")
    for job, command in ((done, "pause"), (stopped, "resume"), ("stopped_batch", "stop")):
        r = client.post(f"/api/v1/jobs/{job}/{command}", headers=CONTROL)
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == PROBLEM
        with pytest.raises(Refused) as cli:
            send_control(offline, ControlCommand(command), job, 1.0)
        assert r.json()["detail"] == str(cli.value)
    r = client.post("/api/v1/jobs?batch_id=stopped_batch", headers=CONTROL,
                    content=b'{"id": 1, "text": "x"}\n')
    assert r.status_code == 409 and "STOPPED and cannot be resumed or resubmitted" in r.text
    assert list(inbox_dir(offline).iterdir()) == []  # the refused upload is gone


def test_unknown_jobs_are_404_and_bad_names_400(client: TestClient) -> None:
    r = client.get("/api/v1/jobs/no_such_batch", headers=CONTROL)
    assert r.status_code == 404 and "unknown job no_such_batch" in r.json()["detail"]
    r = client.get("/api/v1/jobs/bad%20name!", headers=CONTROL)
    assert r.status_code == 400 and "invalid batch id" in r.json()["detail"]
    r = client.get("/api/v1/jobs?status=SLEEPING", headers=CONTROL)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


def test_jobs_list_filters_and_the_detail_has_rate_eta_phase(client: TestClient,
                                                            offline: Settings) -> None:
    running = write_job(offline, "b_run", "RUNNING", processed=2)
    write_job(offline, "b_done", "COMPLETED", processed=5)
    listed = client.get("/api/v1/jobs?status=RUNNING", headers=READ).json()["jobs"]
    assert [j["job_id"] for j in listed] == [running]
    assert "processed_doc_ids" not in listed[0]
    detail = client.get("/api/v1/jobs/b_run", headers=READ).json()
    assert detail["job_id"] == running and detail["processed_doc_ids"] == ["d0", "d1"]
    assert detail["phase"] == "processing" and detail["remaining_documents"] == 3
    assert detail["rate_per_min"] == 0.0 and detail["eta_s"] is None


def test_failures_storylines_links_and_stats(client: TestClient, offline: Settings) -> None:
    failures = {"d7": {"stage": "ner", "error": "ValueError: text too long"}}
    write_job(offline, "b_fail", "RUNNING", failures=failures)
    r = client.get("/api/v1/jobs/b_fail/failures", headers=READ).json()
    assert r["failures"] == [{"doc_id": "d7", "stage": "ner",
                              "error": "ValueError: text too long"}]
    r = client.get("/api/v1/jobs/b_fail/links", headers=READ)
    assert r.status_code == 409 and "written when it is COMPLETED" in r.json()["detail"]
    # A running job's storylines so far, once the linker has written them.
    assert client.get("/api/v1/jobs/b_fail/storylines", headers=READ).status_code == 404
    batch_output_path(offline.data_dir, "b_fail", "storylines").write_text(json.dumps(
        {"storyline_id": "x-live0001", "doc_ids": ["d1", "d2"], "provisional": True}) + "\n")
    so_far = client.get("/api/v1/jobs/b_fail/storylines", headers=READ).json()
    assert so_far["total"] == 1 and so_far["storylines"][0]["provisional"] is True

    write_job(offline, "b_ok", "COMPLETED", processed=5)
    assert client.get("/api/v1/jobs/b_ok/stats", headers=READ).status_code == 404
    write_batch_outputs(offline, "b_ok")
    stories = client.get("/api/v1/jobs/b_ok/storylines", headers=READ).json()
    assert stories["total"] == 1 and stories["storylines"][0]["title"] == "Acme: sued"
    links = client.get("/api/v1/jobs/b_ok/links?offset=1", headers=READ).json()
    assert links == {"total": 1, "links": []}
    assert client.get("/api/v1/jobs/b_ok/stats", headers=READ).json()["event_links"] == 1


def test_size_limits_and_upload_checks(tmp_path: Path) -> None:
    settings = console_settings(tmp_path / "data", console_max_upload_bytes=2048)
    client = TestClient(create_app(settings, Tokens.load(settings)))
    uploads = inbox_dir(settings)
    big = b'{"id": 1, "text": "' + b"x" * 4096 + b'"}\n'
    r = client.post("/api/v1/jobs", headers=CONTROL, content=big)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM

    def chunks() -> object:  # no Content-Length: the limit holds while the body streams
        for _ in range(8):
            yield b"y" * 1024

    r = client.post("/api/v1/jobs", headers=CONTROL, content=chunks())
    assert r.status_code == 413
    assert not uploads.exists() or list(uploads.iterdir()) == []
    r = client.post("/api/v1/jobs/x/pause", headers=CONTROL, content=b"z" * 70_000)
    assert r.status_code == 413
    r = client.post("/api/v1/jobs", headers=CONTROL, content=b"\n  \n")
    assert r.status_code == 400 and "no documents" in r.json()["detail"]
    r = client.post("/api/v1/jobs", headers={**CONTROL, "Content-Type": "multipart/form-data"},
                    content=b"--x--")
    assert r.status_code == 415
    r = client.post("/api/v1/jobs?batch_id=../etc", headers=CONTROL, content=b"{}\n")
    assert r.status_code == 400 and "invalid batch id" in r.json()["detail"]
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_cors_is_off_unless_configured(client: TestClient, tmp_path: Path) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    r = client.options("/api/v1/jobs", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    settings = console_settings(tmp_path / "d2", console_cors_origins="https://ops.example")
    allowed = TestClient(create_app(settings, Tokens.load(settings)))
    r = allowed.options("/api/v1/jobs", headers={**preflight, "Origin": "https://ops.example"})
    assert r.headers["access-control-allow-origin"] == "https://ops.example"
    r = allowed.options("/api/v1/jobs", headers=preflight)
    assert "access-control-allow-origin" not in r.headers


def test_no_token_reaches_the_log(client: TestClient, offline: Settings,
                                  caplog: pytest.LogCaptureFixture) -> None:
    write_job(offline, "logged", "COMPLETED", processed=5)
    with caplog.at_level(logging.DEBUG):
        client.get("/api/v1/jobs", headers=CONTROL)
        client.post("/api/v1/jobs/logged/pause", headers=CONTROL)
        client.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong-guess"})
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request" in text and "/api/v1/jobs" in text
    assert CONTROL_TOKEN not in text and "wrong-guess" not in text


def test_job_gauges_in_metrics(client: TestClient, offline: Settings) -> None:
    job = write_job(offline, "gauged", "RUNNING", processed=3, total=10)
    text = client.get("/metrics").text
    labels = f'batch_id="gauged",job_id="{job}"'
    assert f'eventpipe_job_documents{{{labels},state="processed"}} 3.0' in text
    assert f'eventpipe_job_documents{{{labels},state="remaining"}} 7.0' in text
    assert f'eventpipe_job_status{{{labels},status="RUNNING"}} 1.0' in text
    assert f'eventpipe_job_status{{{labels},status="PAUSED"}} 0.0' in text
    assert f"eventpipe_job_seconds_since_progress{{{labels}}}" in text
    assert job_id_for("gauged") == job


def test_retry_failed_needs_failures_and_a_readable_input(client: TestClient,
                                                          offline: Settings) -> None:
    write_job(offline, "clean", "COMPLETED", processed=5)
    r = client.post("/api/v1/jobs/clean/retry-failed", headers=CONTROL)
    assert r.status_code == 409 and "no failed documents" in r.json()["detail"]
    write_job(offline, "lost_input", "COMPLETED", processed=4,
              failures={"d9": {"stage": "ingest", "error": "line 9 has no `text`"}})
    r = client.post("/api/v1/jobs/lost_input/retry-failed", headers=CONTROL)
    assert r.status_code == 409 and "input is not readable here" in r.json()["detail"]
    assert client.post("/api/v1/jobs/lost_input/retry-failed", headers=READ).status_code == 403
