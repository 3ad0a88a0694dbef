"""Health and metrics over HTTP for every service: `/healthz` (the service has started its
consume loop, which keeps beating), `/readyz` (connected to Kafka, partitions assigned,
backends reachable) and `/metrics` (Prometheus text format). Off unless EVENTPIPE_HEALTH_PORT
is set.

`/healthz` answers 503 until the first beat, so a startup probe on it waits for the model load
(the loop starts after it), and again once the loop has not beaten for `stale_s`: a loop stuck
in a call that never returns gets its pod restarted by the liveness probe."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], str | None]  # None when fine, else what is wrong


class Readiness:
    """What a service reports at /readyz: a flag set by its loop plus registered checks
    (a backend's `check()`), the latter cached for a few seconds so probes stay cheap."""

    def __init__(self, cache_s: float = 5.0) -> None:
        self.reason: str | None = "starting"
        self.checks: list[tuple[str, Check]] = []
        self._cache_s = cache_s
        self._cached: tuple[float, str | None] = (0.0, None)

    def set(self, reason: str | None) -> None:
        self.reason = reason

    def add_check(self, name: str, check: Check) -> None:
        self.checks.append((name, check))

    def why_not(self) -> str | None:
        if self.reason is not None:
            return self.reason
        at, cached = self._cached
        if time.monotonic() - at < self._cache_s:
            return cached
        problem = None
        for name, check in self.checks:
            try:
                result = check()
            except Exception as exc:
                result = f"{type(exc).__name__}: {exc}"
            if result:
                problem = f"{name}: {result}"
                break
        self._cached = (time.monotonic(), problem)
        return problem


READINESS = Readiness()


class Heartbeat:
    """When the consume loop last completed a step (or a deliberate wait for a backend)."""

    def __init__(self, stale_s: float = 300.0) -> None:
        self.stale_s = stale_s
        self._last: float | None = None

    def beat(self) -> None:
        self._last = time.monotonic()

    def why_not(self) -> str | None:
        if self._last is None:
            return "starting: the consume loop has not begun (model loading?)"
        age = time.monotonic() - self._last
        if age > self.stale_s:
            return f"the consume loop has not stepped for {age:.0f} s (limit {self.stale_s:g} s)"
        return None


HEARTBEAT = Heartbeat()


class _Handler(BaseHTTPRequestHandler):
    # A client that connects and sends nothing (or trickles) is dropped after this many
    # seconds instead of holding a thread for good.
    timeout = 10.0

    def do_GET(self) -> None:
        if self.path == "/healthz":
            problem = HEARTBEAT.why_not()
            if problem is None:
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(503, f"unhealthy: {problem}\n".encode(), "text/plain")
        elif self.path == "/readyz":
            problem = READINESS.why_not()
            if problem is None:
                self._send(200, b"ready\n", "text/plain")
            else:
                self._send(503, f"not ready: {problem}\n".encode(), "text/plain")
        elif self.path == "/metrics":
            self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # probes are not news
        pass


def start_health_server(
    port: int, host: str = "127.0.0.1", stale_s: float | None = None
) -> ThreadingHTTPServer:
    if stale_s is not None:
        HEARTBEAT.stale_s = stale_s
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("health endpoints listening", extra={"host": host,
                                                       "port": server.server_address[1]})
    return server
