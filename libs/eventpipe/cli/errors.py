"""The CLI's one table from errors to exit codes, and its name for the shared request errors
(`eventpipe.errors`)."""

from __future__ import annotations

from eventpipe.errors import BrokerConfigError, EventpipeError, InputError, UsageError

# The user's own mistakes (a bad argument or setting, bad input, a broker configuration the
# user must fix) exit 2; every other failure 1; an interrupt 130.
EXIT_CODES: tuple[tuple[type[EventpipeError], int], ...] = (
    (UsageError, 2), (InputError, 2), (BrokerConfigError, 2))
USAGE = 2
FAILURE = 1
INTERRUPTED = 130


def exit_code(exc: EventpipeError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), FAILURE)


__all__ = ["EXIT_CODES", "FAILURE", "INTERRUPTED", "USAGE", "UsageError", "exit_code"]
