"""URLs fit for messages, logs and failure reasons: a URL in settings may carry credentials
(`https://user:password@host`, `?api_key=...`), and a failure reason is stored and shown to
whoever reads the checkpoint."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL without its user name, password, query and fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        query = "redacted" if parts.query else ""
        return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))
    except ValueError:
        return "<unparsable URL>"
