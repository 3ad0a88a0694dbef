"""The in-flight notes and strikes of runtime/kills.py, with real processes killed by
SIGKILL: the lock the kernel drops is what tells a dead worker's note from a live one's."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from eventpipe.runtime.kills import KillGuard


def die_with_in_flight(folder: Path, keys: list[str]) -> None:
    """A forked worker that notes the keys and is SIGKILLed while they are in flight."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            guard = KillGuard(folder)
            guard.open()
            with guard.in_flight(keys):
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL


def test_documents_in_flight_at_a_kill_get_a_strike_each(tmp_path: Path) -> None:
    die_with_in_flight(tmp_path, ["j/a/0", "j/b/0"])
    guard = KillGuard(tmp_path)
    guard.open()  # takes the dead worker's note
    assert list(tmp_path.glob("*.inflight")) == [guard._note]
    assert guard.strikes(["j/a/0", "j/b/0", "j/c/0"]) == {"j/a/0": 1, "j/b/0": 1}
    # The suspect killed again alone: its second strike; the innocent one passed.
    die_with_in_flight(tmp_path, ["j/a/0"])
    guard.forget(["j/b/0"])
    assert guard.strikes(["j/a/0", "j/b/0"]) == {"j/a/0": 2}
    # Another worker of the stage sees the same strikes; the note is not counted twice.
    other = KillGuard(tmp_path)
    other.open()
    assert other.strikes(["j/a/0", "j/b/0"]) == {"j/a/0": 2}
    guard.close()
    other.close()
    assert list(tmp_path.glob("*.inflight")) == []


def test_a_live_worker_or_a_clean_stop_gives_no_strike(tmp_path: Path) -> None:
    busy = KillGuard(tmp_path)
    busy.open()
    looker = KillGuard(tmp_path)
    looker.open()
    with busy.in_flight(["j/a/0"]):
        # Its worker lives (holds the lock): nothing is taken, the note stays.
        assert looker.strikes(["j/a/0"]) == {}
        assert busy._note is not None and busy._note.exists()
    # Left by an exception: the documents did not kill the process.
    try:
        with busy.in_flight(["j/b/0"]):
            raise ValueError("a document that raises")
    except ValueError:
        pass
    busy.close()
    assert looker.strikes(["j/a/0", "j/b/0"]) == {}
    assert not (tmp_path / "strikes.json").exists()


def test_an_unreadable_note_is_ignored_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "1-dead.inflight").write_bytes(b'["j/a/0", tr')
    guard = KillGuard(tmp_path)
    guard.open()
    assert guard.strikes(["j/a/0"]) == {}
    assert not (tmp_path / "1-dead.inflight").exists()
