"""The enabled backends, from settings: JSONL (on by default), PostgreSQL when
EVENTPIPE_POSTGRES_DSN is set, Elasticsearch when EVENTPIPE_ELASTICSEARCH_URL is set."""

from __future__ import annotations

import threading
from functools import partial

from eventpipe.settings import Settings
from eventpipe.storage.base import Backend
from eventpipe.storage.jsonl import JsonlStore
from eventpipe.storage.retry import retry_unavailable


def backend_names(settings: Settings) -> list[str]:
    names = ["jsonl"] if settings.jsonl_enabled else []
    if settings.postgres_dsn is not None:
        names.append("postgres")
    if settings.elasticsearch_url:
        names.append("elasticsearch")
    return names


def open_backend(settings: Settings, name: str) -> Backend:
    """Open one backend; raises BackendUnavailable when it cannot be reached now."""
    if name == "jsonl":
        return JsonlStore(settings.data_dir, fsync=settings.fsync,
                          max_open_files=settings.jsonl_open_files)
    if name == "postgres":
        from eventpipe.storage.postgres import PostgresBackend

        assert settings.postgres_dsn is not None
        return PostgresBackend(settings.postgres_dsn.get_secret_value(),
                               pool_size=settings.postgres_pool_size,
                               migrate=settings.postgres_migrate)
    if name == "elasticsearch":
        from eventpipe.storage.elasticsearch import ElasticsearchBackend

        assert settings.elasticsearch_url
        return ElasticsearchBackend(
            settings.elasticsearch_url,
            index_prefix=settings.elasticsearch_index_prefix,
            username=settings.elasticsearch_username,
            password=(settings.elasticsearch_password.get_secret_value()
                      if settings.elasticsearch_password else None),
            api_key=(settings.elasticsearch_api_key.get_secret_value()
                     if settings.elasticsearch_api_key else None),
            ca_certs=settings.elasticsearch_ca_certs,
        )
    raise ValueError(f"unknown storage backend {name!r}")


def open_backends(settings: Settings, stop: threading.Event) -> list[Backend]:
    """Open every enabled backend, retrying one that cannot be reached yet with backoff;
    raises StopRequested if `stop` is set meanwhile."""
    return [retry_unavailable(name, partial(open_backend, settings, name), stop,
                              settings.backend_retry_max_s)
            for name in backend_names(settings)]
