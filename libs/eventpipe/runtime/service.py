"""Start-up shared by every service's entry point."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from eventpipe.logs import setup_logging
from eventpipe.settings import Settings, get_settings

log = logging.getLogger(__name__)


def main_for(service: str, run: Callable[[Settings], None]) -> Callable[[], None]:
    def main() -> None:
        try:
            settings = get_settings()
        except ValueError as exc:
            print(f"eventpipe {service}: invalid configuration: {exc}", file=sys.stderr)
            sys.exit(2)
        setup_logging(settings.log_level, service)
        log.info("starting")
        try:
            run(settings)
        except Exception:
            log.exception("service crashed")
            sys.exit(1)

    return main
