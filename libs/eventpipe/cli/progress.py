"""Progress of a job while `run` waits: a live rich bar with rate and ETA on a terminal, a
plain line every few seconds elsewhere (logs, CI, pipes: no escape codes there)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from eventpipe.checkpoint.model import Checkpoint

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, line_every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.line_every_s = line_every_s
        self.clock = clock
        # The rate counts from the first checkpoint seen: a resumed job starts above zero.
        self._first: tuple[float, int] | None = None
        self._last_line = 0.0
        self._last_state = ""
        self._last_text = ""
        self._printed = ""
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if self.tty:
            # Imported here: a run in a pipe or a log does not load rich.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TextColumn("failed {task.fields[failed]}"),
                TextColumn("{task.fields[rate]:.1f} docs/s"), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("STARTING", total=None, failed=0, rate=0.0)

    def rate(self, done: int) -> float:
        """Documents per second since the first checkpoint seen."""
        now = self.clock()
        if self._first is None:
            self._first = (now, done)
        started, first_done = self._first
        return (done - first_done) / (now - started) if now > started else 0.0

    def update(self, cp: Checkpoint) -> None:
        total = cp.total_documents or 0
        done = cp.done
        rate = self.rate(done)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=cp.status.value, completed=done,
                             total=total or None, failed=cp.failed_documents, rate=rate)
            return
        pct = 100.0 * done / total if total else 0.0
        state = f"{cp.status.value:<9} {done}/{total} ({pct:5.1f}%) failed {cp.failed_documents}"
        line = f"{state}  {rate:6.1f} docs/s"
        if rate > 0 and total > done:
            line += f"  ETA {eta(int((total - done) / rate))}"
        # A line when the job's state moved, at most every `line_every_s`: a stalled job does
        # not repeat itself.
        if state != self._last_state and self.clock() - self._last_line >= self.line_every_s:
            self.stream.write(line + "\n")
            self._printed = state
            self._last_line = self.clock()
        self._last_state, self._last_text = state, line

    def note(self, message: str) -> None:
        """A line of its own (a service restarted) without tearing the live bar."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            self.stream.write(message + "\n")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._last_state and self._last_state != self._printed:
            self.stream.write(self._last_text + "\n")
        self.stream.flush()


def eta(seconds: int) -> str:
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}"
