"""The console's ASGI application: the API under /api/v1, the web page at /, health and
metrics. Every job rule (what a pause of a finished job answers, how a batch id names a job,
what a resubmission of a stopped batch gets) is the library's (`eventpipe.jobs`), as in the
CLI; this module only maps its answers to HTTP."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException

from eventpipe.api.tokens import Tokens
from eventpipe.errors import Refused
from eventpipe.inbox import inbox_dir
from eventpipe.jobs import (
    check_batch_id,
    default_batch_id,
    resolve_job,
    retry_failed,
    send_control,
    submit,
)
from eventpipe.models import ControlCommand, JobStatus
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import batch_output_path
from eventpipe.storage.names import safe_name
from services.console import problems
from services.console.auth import CONTROL, READ
from services.console.metrics import JobGauges
from services.console.middleware import BodyLimit, RequestLog
from services.console.views import JobViews, read_jsonl

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UPLOAD_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines",
                "application/octet-stream", "text/plain")
PROBLEM = {"description": "An error (RFC 9457 problem details)",
           "content": {problems.PROBLEM_JSON: {"schema": {"type": "object"}}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 400: PROBLEM, 413: PROBLEM,
    422: PROBLEM, 503: PROBLEM, 504: PROBLEM,
}
JOB = PathParam(description="A job id (UUID) or a batch id", min_length=1, max_length=200)
OFFSET = Query(0, ge=0, le=10_000_000)
LIMIT = Query(1000, ge=1, le=10_000)


def create_app(settings: Settings, tokens: Tokens,
               gauges_registry: CollectorRegistry | None = None) -> FastAPI:
    """`gauges_registry`: where the per-job gauges go; the console process passes the global
    registry, which the health port's /metrics serves too. None: a registry of this app's own
    (tests build several apps in one process)."""
    views = JobViews(settings)
    app = FastAPI(
        title="eventpipe console", version="1",
        description="Jobs, control, failures and batch-level results of an eventpipe stack. "
        "Every /api/v1 call needs `Authorization: Bearer <token>`.",
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.tokens = tokens
    problems.install(app)
    api = APIRouter(prefix="/api/v1", responses=ERRORS)

    def job_view(job: str, detail: bool = True) -> dict[str, Any]:
        return views.view(views.require(resolve_job(settings, job), job), detail)

    @api.get("/jobs", summary="List jobs, newest first", dependencies=[READ])
    def list_jobs(status: JobStatus | None = None) -> dict[str, Any]:
        jobs = [views.view(cp) for cp in views.all()
                if status is None or cp["status"] == status.value]
        return {"jobs": jobs}

    @api.get("/jobs/{job}", summary="One job: its checkpoint, rate, ETA and phase",
             dependencies=[READ])
    def get_job(job: str = JOB) -> dict[str, Any]:
        return job_view(job)

    def control_route(command: ControlCommand) -> None:
        def control(job: str = JOB,
                    wait: float = Query(30.0, ge=1, le=300, description="Seconds to wait "
                                        "for the checkpoint to show the new status")
                    ) -> dict[str, Any]:
            cp = send_control(settings, command, job, wait)
            log.info("control sent", extra={"job_id": cp.job_id, "command": command.value,
                                            "status": cp.status.value})
            return views.view(cp.to_file(), detail=False)

        api.add_api_route(
            f"/jobs/{{job}}/{command.value}", control, methods=["POST"],
            dependencies=[CONTROL], name=f"{command.value}_job",
            summary=f"{command.value.capitalize()} a job (409 with the reason when refused)",
        )

    for command in ControlCommand:
        control_route(command)

    @api.post(
        "/jobs", status_code=201, dependencies=[CONTROL],
        summary="Submit a batch: the request body is the JSONL file, streamed",
        openapi_extra={"requestBody": {"required": True, "content": {
            t: {"schema": {"type": "string", "format": "binary"}} for t in UPLOAD_TYPES}}},
    )
    async def submit_upload(
        request: Request, response: Response,
        batch_id: str | None = Query(None, max_length=128, description="Default: "
                                     "batch_YYYYMMDD_HHMMSS; the same id continues its job"),
        retry_failed: bool = Query(False, description="Reprocess only the failed documents"),
    ) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in UPLOAD_TYPES:
            raise HTTPException(415, f"send the JSONL file as the body with one of "
                                f"{', '.join(UPLOAD_TYPES)}, not {content_type[:80]}")
        batch = check_batch_id(batch_id or default_batch_id())
        path, documents = await _save_upload(request, inbox_dir(settings), batch)
        try:
            sub = await run_in_threadpool(submit, settings, path, batch, retry_failed)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.info("batch submitted", extra={"job_id": sub.job_id, "batch_id": batch,
                                           "documents": documents})
        response.headers["Location"] = f"/api/v1/jobs/{sub.job_id}"
        return {"job_id": sub.job_id, "batch_id": batch, "submission_id": sub.submission_id,
                "documents": documents, "input_path": str(path)}

    @api.get("/jobs/{job}/failures", summary="Failed documents: stage and reason",
             dependencies=[READ])
    def failures(job: str = JOB, offset: int = OFFSET, limit: int = LIMIT) -> dict[str, Any]:
        cp = views.require(resolve_job(settings, job), job)
        rows = [{"doc_id": doc_id, "stage": f.get("stage"), "error": f.get("error")}
                for doc_id, f in (cp.get("failures") or {}).items()]
        return {"job_id": cp["job_id"], "total": len(rows),
                "failures": rows[offset:offset + limit]}

    @api.post("/jobs/{job}/retry-failed", status_code=202, dependencies=[CONTROL],
              summary="Send the failed documents again from the job's recorded input")
    def retry(job: str = JOB) -> dict[str, Any]:
        sub = retry_failed(settings, job)
        log.info("failed documents re-sent", extra={"job_id": sub.job_id})
        return {"job_id": sub.job_id, "batch_id": sub.batch_id,
                "submission_id": sub.submission_id}

    def batch_file(job: str, kind: Any) -> Path:
        cp = views.require(resolve_job(settings, job), job)
        # A running job's storylines so far are there too, marked provisional.
        if cp["status"] != JobStatus.COMPLETED.value and not (
                kind == "storylines" and cp["status"] in (JobStatus.RUNNING.value,
                                                          JobStatus.PAUSED.value)):
            raise Refused(f"job {cp['job_id']} is {cp['status']}: links, storylines and "
                          "statistics are written when it is COMPLETED")
        # A reprocess's own version (a job of its own, see eventpipe.reprocess).
        version = cp["metadata"].get("result_version") or 1
        path: Path = batch_output_path(settings.data_dir, cp["batch_id"], kind, version)
        if not path.is_file():
            raise HTTPException(404, f"no {kind} file for batch {cp['batch_id']}: the JSONL "
                                "backend writes them (EVENTPIPE_JSONL_ENABLED)")
        return path

    @api.get("/jobs/{job}/storylines", summary="Storylines of a job: final once it is "
             "COMPLETED, so far (`provisional`) while it runs",
             dependencies=[READ])
    def storylines(job: str = JOB, offset: int = OFFSET, limit: int = LIMIT
                   ) -> dict[str, Any]:
        total, rows = read_jsonl(batch_file(job, "storylines"), offset, limit)
        return {"total": total, "storylines": rows}

    @api.get("/jobs/{job}/links", summary="Event links of a COMPLETED job",
             dependencies=[READ])
    def links(job: str = JOB, offset: int = OFFSET, limit: int = LIMIT) -> dict[str, Any]:
        total, rows = read_jsonl(batch_file(job, "event_links"), offset, limit)
        return {"total": total, "links": rows}

    @api.get("/jobs/{job}/stats", summary="Batch statistics of a COMPLETED job",
             dependencies=[READ])
    def stats(job: str = JOB) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(batch_file(job, "batch_stats").read_text())
        return data

    app.include_router(api)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    own = gauges_registry is None
    registry = CollectorRegistry() if gauges_registry is None else gauges_registry
    registry.register(JobGauges(views))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        text = generate_latest(REGISTRY) + (generate_latest(registry) if own else b"")
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        if settings.checkpoint_dir.is_dir() or not settings.checkpoint_dir.exists():
            return Response("ready\n", media_type="text/plain")
        return Response("not ready: the checkpoint folder is not a folder\n", status_code=503,
                        media_type="text/plain")

    origins = [o.strip() for o in settings.console_cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, upload_path="/api/v1/jobs",
                       upload_bytes=settings.console_max_upload_bytes)
    app.add_middleware(RequestLog)
    return app


async def _save_upload(request: Request, folder: Path, batch_id: str) -> tuple[Path, int]:
    """The body, streamed to `inbox/<batch>-<random>.jsonl` (a file of its own per upload,
    in the folder ingest reads from: a resume re-reads it), and its number of non-blank
    lines. Each line is validated by ingest exactly like a line of a submitted file."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{safe_name(batch_id)}-{uuid.uuid4().hex[:12]}.jsonl"
    tmp = folder / f".{path.name}.part"
    documents, open_line = 0, False  # open_line: the unfinished line has content
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
                *ended, rest = chunk.split(b"\n")
                for part in ended:
                    documents += 1 if open_line or part.strip() else 0
                    open_line = False
                open_line = open_line or bool(rest.strip())
            documents += 1 if open_line else 0
        if documents == 0:
            raise HTTPException(400, "the upload has no documents: send a JSONL file, one "
                                "JSON object with `id` and `text` per line")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, documents
