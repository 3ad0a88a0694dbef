"""File names built from user-given ids: never a path, never outside the data folder."""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(value: str) -> str:
    if _SAFE.match(value) and ".." not in value:
        return value
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", value)[:64].strip("._") or "id"
    return f"{slug}-{hashlib.sha256(value.encode()).hexdigest()[:12]}"
