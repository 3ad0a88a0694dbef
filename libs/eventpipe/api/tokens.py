"""Bearer tokens of the console's API. Two scopes: `control` (submit, pause, resume, stop; also
reads) and `read` (GET only). The control token comes from EVENTPIPE_API_TOKEN (or a file of
that name in EVENTPIPE_SECRETS_DIR); without one, from `DATA_DIR/run/api-token`, which is
written with a random token (mode 0600, never replaced) the first time it is needed."""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from eventpipe.settings import Settings

TOKEN_FILE = Path("run") / "api-token"


class Scope(StrEnum):
    READ = "read"
    CONTROL = "control"


def token_path(settings: Settings) -> Path:
    return settings.data_dir.resolve() / TOKEN_FILE


def token_source(settings: Settings) -> str:
    """Where the control token is, for `eventpipe ps` (never the token itself)."""
    if settings.api_token is not None:
        return "EVENTPIPE_API_TOKEN"
    return str(token_path(settings))


def _read_or_create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"{path} is empty: delete it to have a new token written, or "
                             "set EVENTPIPE_API_TOKEN") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


@dataclass(frozen=True)
class Tokens:
    control: bytes
    read: bytes | None = None

    @classmethod
    def load(cls, settings: Settings) -> Tokens:
        if settings.api_token is not None:
            control = settings.api_token.get_secret_value()
        else:
            control = _read_or_create(token_path(settings))
        if not control.strip():
            raise ValueError("EVENTPIPE_API_TOKEN is empty")
        read = settings.api_read_token.get_secret_value() if settings.api_read_token else None
        return cls(control.encode(), read.encode() if read else None)

    def scope(self, presented: str) -> Scope | None:
        """The scope a presented token grants, or None. Both comparisons always run, in
        constant time, so the answer's timing tells nothing about either token."""
        given = presented.encode()
        is_control = hmac.compare_digest(given, self.control)
        is_read = self.read is not None and hmac.compare_digest(given, self.read)
        if is_control:
            return Scope.CONTROL
        return Scope.READ if is_read else None
