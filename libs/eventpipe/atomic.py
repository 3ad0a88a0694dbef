"""Writing a whole file atomically: temp file in the same folder, fsync, rename, fsync of the
folder. Every file eventpipe replaces whole (checkpoints, batch outputs, the stack's state)
goes through here, so a reader sees the old file or the new one, never half of one, also
after a crash."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Replace `path` with `data`. `fsync=False` skips the two fsyncs (faster, and a crash
    may then lose the new file, though never leave half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_json(path: Path, data: Any, fsync: bool = True) -> None:
    """`data` as indented UTF-8 JSON with a final newline."""
    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode(),
                       fsync)
