"""Bearer tokens of the console's API. Two scopes: `control` (submit, pause, resume, stop; also
reads) and `read` (GET only). The control token comes from EVENTPIPE_API_TOKEN (or a file of
that name in EVENTPIPE_SECRETS_DIR); without one, from `DATA_DIR/run/api-token`, which is
written with a random token (mode 0600, never replaced) the first time it is needed."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from eventpipe.settings import Settings

TOKEN_FILE = Path("run") / "api-token"


class Scope(StrEnum):
    READ = "read"
    CONTROL = "control"


def token_path(settings: Settings) -> Path:
    return settings.data_dir.resolve() / TOKEN_FILE


def _configured(secret: SecretStr | None) -> str | None:
    """An empty variable (`${EVENTPIPE_API_TOKEN:-}` in compose) counts as unset."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def token_source(settings: Settings) -> str:
    """Where the control token is, for `eventpipe ps` (never the token itself)."""
    if _configured(settings.api_token):
        return "EVENTPIPE_API_TOKEN"
    return str(token_path(settings))


def _read_or_create(path: Path) -> str:
    """The token in the file; when there is none, a new one written whole before the file
    appears under its name (a hard link of a finished temp file), so that two consoles
    starting at once agree on one token and neither reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=".api-token.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"{path} is empty: delete it to have a new token written, or set "
                         "EVENTPIPE_API_TOKEN")
    return token


@dataclass(frozen=True)
class Tokens:
    control: bytes
    read: bytes | None = None

    @classmethod
    def load(cls, settings: Settings) -> Tokens:
        control = _configured(settings.api_token) or _read_or_create(token_path(settings))
        read = _configured(settings.api_read_token)
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
