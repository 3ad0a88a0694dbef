"""Plain ASGI middleware (no task groups around the body, so an error raised while it
arrives reaches the exception handlers as itself): request size limits and the request log
with security headers."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("services.console.requests")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
}

SMALL_BODY_BYTES = 64 * 1024


class BodyLimit:
    """Enforced while the body arrives (a chunked upload has no Content-Length to check up
    front): a JSONL upload may be large, anything else is small."""

    def __init__(self, app: ASGIApp, upload_path: str, upload_bytes: int) -> None:
        self.app = app
        self.upload_path = upload_path
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == self.upload_path
        limit = self.upload_bytes if upload else SMALL_BODY_BYTES
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the request body is over {limit} bytes")
            return message

        await self.app(scope, counting, send)


async def _too_large(limit: int, send: Send) -> None:
    body = (b'{"type":"about:blank","title":"Content Too Large","status":413,'
            b'"detail":"the request body is over ' + str(limit).encode() + b' bytes"}')
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestLog:
    """One log line per request: method, path, status, time. Never a header (the token) nor
    the query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info("request", extra={
                "method": scope["method"], "path": str(scope["path"])[:300], "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1)})
