"""File names built from user-given ids: never a path, never outside the data folder."""

from __future__ import annotations

import hashlib
import re

from eventpipe.constants import BATCH_ID


def safe_name(value: str) -> str:
    # A valid batch id is already a safe name.
    if BATCH_ID.fullmatch(value) and ".." not in value:
        return value
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", value)[:64].strip("._") or "id"
    return f"{slug}-{hashlib.sha256(value.encode()).hexdigest()[:12]}"
