"""Moved to `eventpipe.storage.retry` (storage sits below the runner); the names stay here."""

from eventpipe.errors import StopRequested as StopRequested
from eventpipe.storage.retry import retry_unavailable as retry_unavailable
