"""Versioned SQL migrations of the PostgreSQL backend, applied by eventpipe.storage.pg_migrate."""
