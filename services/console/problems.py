"""Errors as `application/problem+json` (RFC 9457): every refusal, whether it comes from
FastAPI's validation, the auth check or the library's job rules, has the same shape."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from confluent_kafka import KafkaException
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from eventpipe.errors import Refused, UnknownJob, UsageError
from eventpipe.kafka.errors import KafkaSetupError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")}
                  for e in exc.errors()]
        return problem(422, "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors),
                       errors=errors)

    async def usage(_request: Request, exc: Exception) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownJob) else 409 if isinstance(exc, Refused) else 400
        return problem(status, str(exc))

    async def timeout(_request: Request, exc: Exception) -> JSONResponse:
        return problem(504, str(exc))

    async def broker(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("broker unreachable", extra={"reason": str(exc)[:500]})
        return problem(503, f"the Kafka broker did not answer: {exc}")

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc,
                  extra={"method": request.method, "path": request.url.path})
        return problem(500, "internal error; the console's log has the details")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(UsageError, usage)
    app.add_exception_handler(TimeoutError, timeout)
    app.add_exception_handler(KafkaSetupError, broker)
    app.add_exception_handler(KafkaException, broker)
    app.add_exception_handler(Exception, crash)
