"""What the console's reads cost, and what its checkpoint cache saves.

A data directory with JOBS checkpoint files of DOCS processed documents each, plus one job of
BIG documents (the million-document job users run). The app is served in-process (ASGI, no
network), so the numbers are the console's own work: `GET /api/v1/jobs` and
`GET /api/v1/jobs/{big}` with a cold cache (a fresh app each time: every file parsed) against
a warm one (files unchanged: nothing parsed), p50 over the repeats. Ratios are within this run.

    .venv/bin/python bench/console_api.py [--jobs 200] [--docs 1000] [--big 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from eventpipe.api.tokens import Tokens
from eventpipe.checkpoint.files import atomic_write_json, checkpoint_path
from eventpipe.models import job_id_for
from eventpipe.settings import Settings
from services.console.app import create_app

AUTH = {"Authorization": "Bearer bench"}


def checkpoint(batch_id: str, docs: int) -> dict[str, Any]:
    return {"job_id": job_id_for(batch_id), "batch_id": batch_id, "status": "RUNNING",
            "total_documents": docs * 2, "processed_documents": docs, "failed_documents": 0,
            "processed_doc_ids": [f"doc-{i:07d}" for i in range(docs)], "failed_doc_ids": [],
            "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
            "metadata": {"started_at": "2026-12-01T10:00:00Z", "progressive_save_enabled": True,
                         "total_known": True},
            "failures": {}}


def p50(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), api_token=SecretStr("bench"), fsync=False)
        for n in range(args.jobs):
            cp = checkpoint(f"bench_{n}", args.docs)
            atomic_write_json(checkpoint_path(settings.checkpoint_dir, cp["job_id"]), cp, False)
        big = checkpoint("bench_big", args.big)
        atomic_write_json(checkpoint_path(settings.checkpoint_dir, big["job_id"]), big, False)
        tokens = Tokens.load(settings)

        def fresh() -> TestClient:
            return TestClient(create_app(settings, tokens))

        def ok(client: TestClient, path: str) -> None:
            response = client.get(path, headers=AUTH)
            assert response.status_code == 200, response.text

        warm = fresh()
        ok(warm, "/api/v1/jobs")
        rows = []
        for label, path in (("GET /api/v1/jobs", "/api/v1/jobs"),
                            ("GET /api/v1/jobs/{big}", f"/api/v1/jobs/{big['job_id']}")):
            cold_s = p50(lambda path=path: ok(fresh(), path), args.repeats)
            warm_s = p50(lambda path=path: ok(warm, path), args.repeats)
            rows.append((label, cold_s, warm_s))
    print(f"{args.jobs} jobs of {args.docs} documents + one of {args.big}; p50 of "
          f"{args.repeats} (shared machine: compare the ratio, not the seconds)")
    print(f"{'call':<26}{'cold s':>10}{'warm s':>10}{'cold/warm':>11}")
    for label, cold_s, warm_s in rows:
        print(f"{label:<26}{cold_s:>10.3f}{warm_s:>10.3f}{cold_s / warm_s:>11.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
