"""The console process: uvicorn serving the app on EVENTPIPE_CONSOLE_HOST:PORT in a thread,
stopped by SIGTERM like every service; ready (for `eventpipe up`) once it listens."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from prometheus_client import REGISTRY

from eventpipe.api.tokens import Tokens, token_source
from eventpipe.runtime.health import HEARTBEAT, READINESS
from eventpipe.runtime.loop import ready_file
from eventpipe.runtime.service import install_stop_handlers, main_for
from eventpipe.settings import Settings
from services.console.app import create_app

log = logging.getLogger(__name__)


def run(settings: Settings) -> None:
    stop = install_stop_handlers()
    tokens = Tokens.load(settings)
    config = uvicorn.Config(
        create_app(settings, tokens, gauges_registry=REGISTRY),
        host=settings.console_host, port=settings.console_port,
        log_config=None, access_log=False, server_header=False, timeout_keep_alive=5,
        limit_concurrency=200,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive() or stop.is_set():
            raise RuntimeError(f"the console could not listen on {settings.console_host}:"
                               f"{settings.console_port} (see the lines above)")
        time.sleep(0.05)
    ready = ready_file(settings.data_dir, "console")
    ready.parent.mkdir(parents=True, exist_ok=True)
    ready.touch()
    READINESS.set(None)
    log.info("console listening", extra={"host": settings.console_host,
                                         "port": settings.console_port,
                                         "token": token_source(settings)})
    try:
        while not stop.wait(0.5) and thread.is_alive():
            HEARTBEAT.beat()  # /healthz on EVENTPIPE_HEALTH_PORT: alive while uvicorn runs
    finally:
        server.should_exit = True
        thread.join(10)
        ready.unlink(missing_ok=True)


main = main_for("console", run)
