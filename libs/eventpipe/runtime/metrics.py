"""The Prometheus metrics every service exports at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DOCUMENTS_PROCESSED = Counter(
    "eventpipe_documents_processed", "Documents a stage processed (sink: saved)", ["stage"])
DOCUMENTS_FAILED = Counter(
    "eventpipe_documents_failed", "Documents that failed, by the stage that failed them",
    ["stage"])
STAGE_SECONDS = Histogram(
    "eventpipe_stage_document_seconds", "Processing time per document, by stage", ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CONSUMER_LAG = Gauge(
    "eventpipe_consumer_lag", "Records behind the partition's end, per assigned partition",
    ["topic", "partition"])
CHECKPOINT_WRITE_SECONDS = Histogram(
    "eventpipe_checkpoint_write_seconds", "Time to write one checkpoint file")
BACKEND_SAVE_SECONDS = Histogram(
    "eventpipe_backend_save_seconds", "Time to save one batch to a backend", ["backend"])
EVENTS_BY_BACKEND = Counter(
    "eventpipe_events_documents", "Documents of the events stage by the backend whose events "
    "they got and, for a rules fallback, the reason's kind", ["backend", "fallback"])
BACKEND_ERRORS = Counter(
    "eventpipe_backend_errors", "Failed saves, by backend and kind", ["backend", "kind"])
JOBS_STUCK = Gauge(
    "eventpipe_jobs_stuck", "Running jobs with no progress for EVENTPIPE_STUCK_AFTER_S or more")
DOCUMENTS_RETRIED = Counter(
    "eventpipe_documents_retried", "Transient failures sent to the stage's retry topic",
    ["stage"])
