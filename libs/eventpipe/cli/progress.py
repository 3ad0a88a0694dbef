"""Progress display for the CLI: a live bar on a terminal, a line every few seconds
elsewhere (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from eventpipe.checkpoint.model import Checkpoint


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, line_every_s: float = 2.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.line_every_s = line_every_s
        self.started = time.monotonic()
        self._last_line = 0.0
        self._last_text = ""
        self._printed = ""

    def update(self, cp: Checkpoint) -> None:
        total = cp.total_documents or 0
        done = cp.done
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * done / total if total else 0.0
        text = (f"{cp.status.value:<9} {done}/{total} ({pct:5.1f}%) "
                f"failed {cp.failed_documents}  {rate:6.1f} docs/s")
        if self.tty:
            width = 30
            filled = int(width * pct / 100)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {text}")
            self.stream.flush()
        elif text != self._last_text and time.monotonic() - self._last_line >= self.line_every_s:
            self.stream.write(text + "\n")
            self._printed = text
            self._last_line = time.monotonic()
        self._last_text = text

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        elif self._last_text and self._last_text != self._printed:
            self.stream.write(self._last_text + "\n")
        self.stream.flush()
