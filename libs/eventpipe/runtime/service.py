"""Start-up shared by every service's entry point."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from eventpipe.errors import UsageError
from eventpipe.kafka.tracing import configure as configure_tracing
from eventpipe.logs import setup_logging
from eventpipe.runtime.health import start_health_server
from eventpipe.settings import Settings, get_settings

log = logging.getLogger(__name__)


def main_for(service: str, run: Callable[[Settings], None]) -> Callable[[], None]:
    def main() -> None:
        # Results, logs and checkpoints are for the stack's user alone: files 0600, folders 0700.
        os.umask(0o077)
        try:
            settings = get_settings()
        except ValueError as exc:
            print(f"eventpipe {service}: invalid configuration: {exc}", file=sys.stderr)
            sys.exit(2)
        setup_logging(settings.log_level, service)
        log.info("starting")
        try:
            configure_tracing(settings, service)
        except UsageError as exc:
            print(f"eventpipe {service}: {exc}", file=sys.stderr)
            sys.exit(2)
        if settings.health_port is not None:
            start_health_server(settings.health_port, settings.health_host,
                                stale_s=settings.heartbeat_stale_s)
        try:
            run(settings)
        except Exception:
            log.exception("service crashed")
            sys.exit(1)

    return main


def install_stop_handlers(event: threading.Event | None = None) -> threading.Event:
    """SIGTERM and SIGINT set the event: the service finishes what it holds, then stops."""
    stop = event or threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("stopping after the current batch", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
