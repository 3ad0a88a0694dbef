"""Documents that kill a stage process.

A document that makes a stage raise fails alone (eventpipe.runtime.stage). One that kills the
process itself (the kernel's OOM killer, a segfault in a native library) leaves no exception
to catch: its batch was never committed, so the restarted process gets it again and dies
again, and the partition is stuck for good. So a worker notes the documents it is about to
process in a file of its own, which it holds locked (flock) for as long as it lives. The
kernel drops the lock when the process dies, however it dies: a file whose lock another
worker can take is the note of a dead worker, and each document in it gets a strike.

A document with a strike is processed alone, so that the neighbours of the one that killed
the batch pass and are cleared; one that reaches EVENTPIPE_MAX_STAGE_KILLS (2) strikes is
failed without being processed again. The strikes are kept per stage in
`<data>/run/inflight/<stage>/`, shared by the workers that share a data folder (the embedded
stack, docker-compose); in Kubernetes each pod has its own emptyDir there, which outlives a
restart of its container.

The note costs two small writes per batch and no fsync: it has to outlive the process, not
the machine (a kernel crash is not a document's doing)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from eventpipe.atomic import atomic_write_json

log = logging.getLogger(__name__)

# Strikes are forgotten after a week, and at most this many kept (the oldest go first).
STRIKE_TTL_S = 7 * 24 * 3600
MAX_STRIKES = 10_000
NOTE_SUFFIX = ".inflight"


def kills_dir(data_dir: Path, stage: str) -> Path:
    return data_dir / "run" / "inflight" / stage


class KillGuard:
    """One worker's in-flight note and the stage's strikes. Keys name a document and its
    replay (`job/doc/replays`): a replayed document starts with no strike."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.strikes_path = folder / "strikes.json"
        self._fd: int | None = None
        self._note: Path | None = None
        self._cache: tuple[tuple[int, int, int], dict[str, list[float]]] | None = None

    # --- this worker's note ---------------------------------------------------------------

    def open(self) -> None:
        """Create and lock this worker's note, then take the notes of dead workers."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        note = self.folder / f"{os.getpid()}-{os.urandom(4).hex()}{NOTE_SUFFIX}"
        while True:
            fd = os.open(note, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                break
            # Taken for a dead worker's note between the open and the lock: make it again.
            os.close(fd)
        self._fd, self._note = fd, note
        self.sweep()

    def close(self) -> None:
        """A clean stop: nothing was in flight, so the note goes (unlinked while locked)."""
        if self._fd is None or self._note is None:
            return
        self._note.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = self._note = None

    @contextlib.contextmanager
    def in_flight(self, keys: list[str]) -> Iterator[None]:
        """Noted while the block runs: a process that dies inside it leaves the keys behind.
        Left by an exception, the documents did not kill the process: the note is cleared."""
        fd = self._fd
        if fd is None:
            yield
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(keys).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)

    # --- the stage's strikes --------------------------------------------------------------

    def sweep(self) -> int:
        """Give a strike to every document in the note of a dead worker; returns how many."""
        struck: list[str] = []
        for note in self.folder.glob(f"*{NOTE_SUFFIX}"):
            if note == self._note:
                continue
            keys = self._take(note)
            if keys:
                log.warning("documents were in flight when a worker died: a strike each",
                            extra={"note": note.name, "documents": len(keys)})
                struck += keys
        if struck:
            self._update(strike=struck)
        return len(struck)

    def _take(self, note: Path) -> list[str]:
        """The keys of a dead worker's note, the note removed; [] if its worker lives."""
        try:
            fd = os.open(note, os.O_RDWR)
        except FileNotFoundError:
            return []  # taken by another worker
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # its worker holds it: alive
            if not os.fstat(fd).st_nlink:
                return []  # another worker took it between our open and our lock
            raw = os.pread(fd, 1 << 24, 0)
            # Removed before the strikes are counted: a crash in between loses a strike (one
            # more kill at worst), never counts one twice (an innocent document failed).
            note.unlink()
        finally:
            os.close(fd)
        try:
            keys = json.loads(raw or b"[]")
        except (ValueError, UnicodeDecodeError):
            log.error("unreadable in-flight note of a dead worker ignored",
                      extra={"note": note.name})
            return []
        return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []

    def strikes(self, keys: Iterable[str]) -> dict[str, int]:
        """Strikes of these keys (those with none left out), after taking dead workers'
        notes: a worker that inherits a dead one's partitions sees its strikes."""
        self.sweep()
        known = self._read()
        return {k: int(known[k][0]) for k in keys if k in known}

    def forget(self, keys: list[str]) -> None:
        """Documents that passed alone: innocent."""
        self._update(forget=keys)

    def _read(self) -> dict[str, list[float]]:
        try:
            st = os.stat(self.strikes_path)
        except FileNotFoundError:
            return {}
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != signature:
            try:
                data = json.loads(self.strikes_path.read_bytes())
            except (ValueError, UnicodeDecodeError):
                log.error("unreadable strikes file: starting from none",
                          extra={"path": str(self.strikes_path)})
                data = {}
            self._cache = (signature, data if isinstance(data, dict) else {})
        return self._cache[1]

    def _update(self, strike: Iterable[str] = (), forget: Iterable[str] = ()) -> None:
        """Read, change and replace the strikes under the stage's lock (workers share them).
        Each entry: [strikes, time of the last one]."""
        lock = os.open(self.folder / "strikes.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            strikes = dict(self._read())
            now = time.time()
            for k in strike:
                strikes[k] = [strikes.get(k, [0, now])[0] + 1, now]
            for k in forget:
                strikes.pop(k, None)
            kept = sorted(((k, v) for k, v in strikes.items() if now - v[1] < STRIKE_TTL_S),
                          key=lambda kv: kv[1][1])[-MAX_STRIKES:]
            atomic_write_json(self.strikes_path, dict(kept), fsync=False)
        finally:
            os.close(lock)
