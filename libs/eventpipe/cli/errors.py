"""The CLI's name for the shared request errors (`eventpipe.errors`)."""

from eventpipe.errors import UsageError

__all__ = ["UsageError"]
