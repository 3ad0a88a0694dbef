"""Errors of a user's request, shared by every front end: the CLI prints the message and exits
with code 2; the console's HTTP API answers 400 (`UsageError`), 404 (`UnknownJob`) or 409
(`Refused`) with the same message."""


class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit code 2."""


class UnknownJob(UsageError):
    """No checkpoint exists for the job named."""


class Refused(UsageError):
    """The action does not fit the job's status (pausing a finished job, resubmitting a
    stopped batch, ...)."""
