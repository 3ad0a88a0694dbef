"""The console on a real stack (`eventpipe up`, embedded broker, every service a process):
the issue's acceptance, step by step, through HTTP only."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventpipe.models import job_id_for
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, read_results, run_cli, wait_checkpoint, write_jsonl

pytestmark = pytest.mark.integration

TOKEN = "acceptance-token-7f3a"


def poll(get: Any, until: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = get()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout_s} s; last: {value}")
        time.sleep(0.1)


def test_control_a_job_over_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"EVENTPIPE_API_TOKEN": TOKEN}
    n = 400
    path = write_jsonl(tmp_path / "batch.jsonl", corpus_lines(n, seed=31))
    stack_client: list[httpx.Client] = []
    up = run_cli("up", data_dir=data, env_extra=env)
    assert up.returncode == 0, up.stderr
    try:
        ps = run_cli("ps", data_dir=data, env_extra=env)
        assert ps.returncode == 0, ps.stdout + ps.stderr
        match = re.search(r"console: (http://127\.0\.0\.1:\d+) \(API token: "
                          r"EVENTPIPE_API_TOKEN\)", ps.stdout)
        assert match, ps.stdout
        assert TOKEN not in ps.stdout + up.stdout + up.stderr
        base = match.group(1)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        http = httpx.Client(base_url=base, timeout=60)
        stack_client.append(http)

        # Submitted over HTTP: the body streamed into the data directory, which a resume
        # re-reads like a submitted file.
        with path.open("rb") as body:
            sub = http.post("/api/v1/jobs?batch_id=http_ctl", content=body,
                            headers={**auth, "Content-Type": "application/x-ndjson"})
        assert sub.status_code == 201, sub.text
        job = job_id_for("http_ctl")
        assert sub.json()["job_id"] == job and sub.json()["documents"] == n
        assert sub.headers["location"] == f"/api/v1/jobs/{job}"
        settings = Settings(data_dir=data)
        wait_checkpoint(settings, job, lambda c: 5 <= c["processed_documents"] < n // 2)

        assert http.get("/api/v1/jobs").status_code == 401
        assert http.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"}
                        ).status_code == 401
        listed = http.get("/api/v1/jobs", headers=auth)
        assert listed.status_code == 200
        assert [j["job_id"] for j in listed.json()["jobs"]] == [job]

        refused = http.post(f"/api/v1/jobs/{job}/pause")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert http.get(f"/api/v1/jobs/{job}", headers=auth).json()["status"] == "RUNNING"

        paused = http.post("/api/v1/jobs/http_ctl/pause", headers=auth)  # by batch id
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "PAUSED"
        # Stops progressing: after the documents already past every stage drain, the count
        # stays put for a while.
        def count() -> int:
            return int(http.get(f"/api/v1/jobs/{job}", headers=auth
                                ).json()["processed_documents"])

        still = poll(lambda: (count(), time.sleep(1.0), count()), lambda v: v[0] == v[2])[0]
        quiet_until = time.monotonic() + 3.0
        while time.monotonic() < quiet_until:
            assert count() == still, "documents were processed while paused"
            time.sleep(0.2)
        assert still < n

        again = http.post(f"/api/v1/jobs/{job}/pause", headers=auth)
        assert again.status_code == 200 and again.json()["status"] == "PAUSED"
        resumed = http.post(f"/api/v1/jobs/{job}/resume", headers=auth)
        assert resumed.status_code == 200, resumed.text
        done = poll(lambda: http.get(f"/api/v1/jobs/{job}", headers=auth).json(),
                    lambda j: j["status"] in ("COMPLETED", "FAILED", "STOPPED"), 240)
        assert done["status"] == "COMPLETED"
        assert done["processed_documents"] == n and done["failed_documents"] == 0
        counts = Counter(r["id"] for r in read_results(results_path(data, "http_ctl")))
        assert len(counts) == n and set(counts.values()) == {1}

        # A finished job refuses a pause with the CLI's reason, as a 409 problem.
        late = http.post(f"/api/v1/jobs/{job}/pause", headers=auth)
        assert late.status_code == 409
        assert late.json()["detail"] == f"job {job} is already COMPLETED: nothing to pause"

        page = http.get("/")
        assert page.status_code == 200 and "<title>eventpipe console</title>" in page.text
        spec = http.get("/api/v1/openapi.json").json()
        assert {"/api/v1/jobs", "/api/v1/jobs/{job}/pause"} <= set(spec["paths"])
        stats = http.get(f"/api/v1/jobs/{job}/stats", headers=auth).json()
        assert stats["documents"]["processed"] == n
        metrics = http.get("/metrics").text
        assert (f'eventpipe_job_documents{{batch_id="http_ctl",job_id="{job}",'
                f'state="processed"}} {float(n)}') in metrics
    finally:
        for client in stack_client:
            client.close()
        run_cli("down", data_dir=data)
