"""Storage backends for per-document results. Each saves idempotently, keyed by job and
document id."""
