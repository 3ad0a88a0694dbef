"""The `eventpipe` command: run a batch end to end, or operate a background stack."""

from eventpipe.cli.main import main

__all__ = ["main"]
