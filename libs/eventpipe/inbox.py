"""Which files ingest may open. A file submission names a path, and anyone who can write to
the submissions topic can send one; opening any path named there would let a user read,
through the stack, a file they cannot read themselves. So ingest opens only files under its
input roots (links resolved first): the data folder's `inbox/`, which only the stack's user
can write (the data folder is 0700), and the folders EVENTPIPE_INPUT_ROOTS names. The CLI
puts a file from elsewhere into the inbox itself (a hard link, else a copy), with the
permissions of the user who runs it."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from eventpipe.errors import InputRefused as InputRefused
from eventpipe.settings import Settings


def inbox_dir(settings: Settings) -> Path:
    return settings.data_dir / "inbox"


def input_roots(settings: Settings) -> list[Path]:
    extra = [Path(p.strip()) for p in (settings.input_roots or "").split(",") if p.strip()]
    return [r.resolve() for r in (inbox_dir(settings), *extra)]


def allowed_input(settings: Settings, path: str | Path) -> Path:
    """The resolved path, if it lies under an input root; else InputRefused."""
    resolved = Path(path).resolve()
    for root in input_roots(settings):
        if resolved.is_relative_to(root) and resolved != root:
            return resolved
    raise InputRefused(f"{path} is not under an input root ({inbox_dir(settings)} or "
                       "EVENTPIPE_INPUT_ROOTS): submit it with `eventpipe submit`, which "
                       "places it in the inbox")


def place_in_inbox(settings: Settings, path: Path, job_id: str) -> Path:
    """The path ingest may open for this input: the file itself when under an input root,
    else `inbox/<job_id>.jsonl`, a hard link to it (a copy across file systems), made by the
    caller and so with the caller's permissions. Replaced atomically: an ingest still
    reading the previous one keeps reading it."""
    with contextlib.suppress(InputRefused):
        return allowed_input(settings, path)
    inbox = inbox_dir(settings)
    inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = inbox / f"{job_id}.jsonl"
    tmp = inbox / f".{job_id}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:  # another file system, or links to files of others not allowed
        with path.open("rb") as src, open(tmp, "xb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, target)
    return target
