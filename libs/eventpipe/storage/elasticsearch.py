"""The Elasticsearch backend: one search document per processed document in
`<prefix>-documents`, one per failed document in `<prefix>-failures`.

Idempotent: a document's `_id` is derived from its job and document id, so a redelivery
overwrites it. At start-up the mappings are put as index templates (so an index deleted and
auto-created later gets them again) and the indices are created with them explicitly (so a
user's own broader template cannot win).

Works with the 8.x and the 9.x client against Elasticsearch 8 and 9: the 9.x client marks every
request "compatible-with=9", which an 8.x server refuses; requests go out as plain JSON instead,
as the 8.x client sends them by default and every server since 7 accepts."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from elastic_transport import ApiResponse, TransportApiResponse, TransportError
from elastic_transport import Transport as _Transport
from elasticsearch import ApiError, Elasticsearch

from eventpipe.models import FailedDocument
from eventpipe.settings import Settings
from eventpipe.storage.base import BackendUnavailable, ResultRecord, StorageError
from eventpipe.urls import redact_url

log = logging.getLogger(__name__)

MAX_ID_BYTES = 512  # Elasticsearch refuses longer _ids
# One bulk request stays well under http.max_content_length (100 MB by default); a single
# larger document still goes alone.
MAX_BULK_BYTES = 10 * 1024 * 1024
# Ours must win over the built-in templates (priority 100), whose patterns may match a prefix.
TEMPLATE_PRIORITY = 200
_CHECK_TIMEOUT_S = 3.0

# A keyword term over 32766 bytes makes Elasticsearch refuse the whole document; values longer
# than `ignore_above` characters (4 bytes each at worst) stay in _source but are not indexed.
_ID: dict[str, Any] = {"type": "keyword", "ignore_above": 8191}
_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}

DOCUMENTS_SETTINGS: dict[str, Any] = {
    # Entities, triplets, events and participants of one document together (default 10000).
    "index.mapping.nested_objects.limit": 50000,
}

# Nested keeps each entity/triplet/event's fields together (label=PERSON AND text=Bob in one
# entity); include_in_root also indexes them flat, so a plain term query on `entities.label`
# finds the document too.
DOCUMENTS_MAPPINGS: dict[str, Any] = {
    # A field added to the records later is kept in _source, never refuses a document.
    "dynamic": False,
    "properties": {
        "id": _ID,
        "job_id": _ID,
        "batch_id": _ID,
        "text": {"type": "text"},
        # Foreign producers put anything in meta: flattened never conflicts or grows the mapping.
        "meta": {"type": "flattened", "ignore_above": 8191},
        "entities": {
            "type": "nested",
            "include_in_root": True,
            "properties": {"text": _KEYWORD, "label": _ID, "start_char": _INT, "end_char": _INT},
        },
        "triplets": {
            "type": "nested",
            "include_in_root": True,
            "properties": {
                "subject": _KEYWORD,
                "action": _KEYWORD,
                "object": _KEYWORD,
                "negated": _BOOL,
                "passive": _BOOL,
                "agent": _KEYWORD,
                "prep_modifiers": {"properties": {"prep": _KEYWORD, "object": _KEYWORD}},
                "sentence": _INT,
                "start_char": _INT,
                "end_char": _INT,
            },
        },
        "events": {
            "type": "nested",
            "include_in_root": True,
            "properties": {
                "trigger": _KEYWORD,
                "type": _ID,
                # include_in_parent: a nested query on `events` can test its participants; the
                # root gets them through the events' include_in_root.
                "participants": {
                    "type": "nested",
                    "include_in_parent": True,
                    "properties": {"text": _KEYWORD, "role": _ID, "label": _ID},
                },
                "location": _KEYWORD,
                "time": _KEYWORD,
                "sentence": _INT,
                "source": _ID,
            },
        },
        "timings_ms": {"type": "object", "dynamic": True},
        # A reprocess (a job of its own: its own _id) adds version N beside the earlier ones;
        # sorting a batch's documents by it answers with the newest.
        "result_version": _INT,
        "saved_at": {"type": "date"},
    },
}

FAILURES_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "job_id": _ID,
        "batch_id": _ID,
        "doc_id": _ID,
        "stage": _ID,
        "error": {"type": "text", "fields": {"keyword": _KEYWORD}},
        # Failures come from any producer; a malformed time must not lose the failure.
        "at": {"type": "date", "ignore_malformed": True},
        "first_failed_at": {"type": "date", "ignore_malformed": True},
        "failure_class": _ID,
        "attempts": {"type": "integer"},
        "replays": {"type": "integer"},
        "quarantined": {"type": "boolean"},
        "schema_version": {"type": "integer"},
        # The stage's input message as JSON text: kept, never indexed (its meta is free-form).
        "payload_json": {"type": "text", "index": False},
    },
}

# Index names: lowercase, none of \ / * ? " < > | , # : or space, not starting with - _ +.
_INDEX_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")
_COMPAT_MIMETYPE = re.compile(
    r"application/vnd\.elasticsearch\+([a-z-]+)\s*;\s*compatible-with=\d+"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Per bulk item: worth retrying as a whole (the cluster is overloaded, blocked, missing an
# index, or refusing our credentials), not the document's fault.
_TRANSIENT_ITEM_STATUS = frozenset({401, 403, 404, 408, 429})


def document_key(job_id: str, doc_id: str) -> str:
    """The `_id` of a document of a job: `job_id:doc_id`, or the SHA-256 of both where that
    would be ambiguous (a colon in the job id) or longer than 512 bytes. A hash has no colon,
    so it never equals a plain key."""
    key = f"{job_id}:{doc_id}"
    if ":" not in job_id and len(key.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES:
        return key
    return _sha256(json.dumps([job_id, doc_id]))


def bounded_id(value: str) -> str:
    """An _id Elasticsearch accepts: the value itself, or its SHA-256 when over 512 bytes."""
    if len(value.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES:
        return value
    return _sha256(value)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(value: Mapping[str, Any]) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # An unpaired surrogate (possible in JSON input) is no Unicode character; servers may
        # refuse even its escaped form (the test emulator does), so it becomes U+FFFD.
        return _SURROGATE.sub("\ufffd", text).encode()


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class _PlainJsonTransport(_Transport):
    """Sends `application/json` (and `application/x-ndjson`) instead of the client's versioned
    media types: the 9.x client's "compatible-with=9" is refused by Elasticsearch 8."""

    def perform_request(self, method: str, target: str, *args: Any, **kwargs: Any
                        ) -> TransportApiResponse:
        headers = kwargs.get("headers")
        if isinstance(headers, Mapping):
            kwargs["headers"] = {
                k: _COMPAT_MIMETYPE.sub(r"application/\1", v) if isinstance(v, str) else v
                for k, v in headers.items()
            }
        return super().perform_request(method, target, *args, **kwargs)


class _Action(NamedTuple):
    target: str  # the index
    id: str
    source: Mapping[str, Any]
    label: str  # names the document in errors


class ElasticsearchBackend:
    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        index_prefix: str = "eventpipe",
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        request_timeout: float = 10.0,
        ca_certs: Path | None = None,
    ) -> None:
        if not _INDEX_PREFIX.match(index_prefix):
            raise ValueError(
                "elasticsearch_index_prefix must be 1-200 lowercase letters, digits, '.', '_' "
                f"or '-', starting with a letter or digit; got {index_prefix!r}"
            )
        if api_key and (username or password):
            raise ValueError("give either an Elasticsearch API key or a user name and password")
        if (username is None) != (password is None):
            raise ValueError("an Elasticsearch user name needs a password, and the reverse")
        self.url = redact_url(url)
        self.index_prefix = index_prefix
        self.documents_index = self.index_name("documents")
        self.failures_index = self.index_name("failures")
        self.request_timeout = request_timeout
        self._secrets = [s for s in (password, api_key, _url_password(url)) if s]
        # A private CA (ECK signs its own): verified against it instead of the system CAs.
        tls: dict[str, Any] = {}
        if ca_certs is not None:
            if not ca_certs.is_file():
                raise ValueError(f"elasticsearch_ca_certs: {ca_certs} is not a file")
            tls["ca_certs"] = str(ca_certs)
        try:
            self.client = Elasticsearch(
                url,
                api_key=api_key or None,
                basic_auth=(username, password) if username and password else None,
                request_timeout=request_timeout,
                # One quick retry covers a stale keep-alive connection; longer outages are the
                # sink's to wait out, with backoff. Statuses are classified below, not retried.
                max_retries=1,
                retry_on_status=(),
                retry_on_timeout=False,
                transport_class=_PlainJsonTransport,
                **tls,
            )
        except ValueError as exc:
            raise ValueError(f"bad Elasticsearch URL {self.url}: {exc}") from None
        self._ready = False
        try:
            self._ensure_indices()
        except BaseException:
            self.client.close()
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchBackend:
        """From an `eventpipe.settings.Settings` whose `elasticsearch_url` is set."""
        if not settings.elasticsearch_url:
            raise ValueError("elasticsearch_url is not set")
        password = settings.elasticsearch_password
        api_key = settings.elasticsearch_api_key
        return cls(
            settings.elasticsearch_url,
            index_prefix=settings.elasticsearch_index_prefix,
            username=settings.elasticsearch_username,
            password=password.get_secret_value() if password is not None else None,
            api_key=api_key.get_secret_value() if api_key is not None else None,
            ca_certs=settings.elasticsearch_ca_certs,
        )

    def index_name(self, suffix: str) -> str:
        """`<prefix>-<suffix>`: where the batch-level step keeps its own indices too."""
        return f"{self.index_prefix}-{suffix}"

    # --- Backend protocol ----------------------------------------------------------------

    def save_documents(self, records: Sequence[ResultRecord]) -> None:
        self._bulk(
            _Action(self.documents_index, document_key(r["job_id"], r["id"]), r,
                    f"document {r['id']!r} of job {r['job_id']!r}")
            for r in records
        )

    def save_failures(self, failures: Sequence[FailedDocument]) -> None:
        self._bulk(
            _Action(self.failures_index, document_key(f.job_id, f.doc_id), _failure_source(f),
                    f"failure of document {f.doc_id!r} of job {f.job_id!r}")
            for f in failures
        )

    def load_failures(self, batch_id: str, job_id: str) -> dict[str, FailedDocument]:
        """Every failure record of a job, page by page (search_after on the document id)."""
        found: dict[str, FailedDocument] = {}
        after: list[Any] | None = None
        while True:
            try:
                response = self.client.search(
                    index=self.failures_index, query={"term": {"job_id": job_id}}, size=1000,
                    sort=[{"doc_id": "asc"}], search_after=after)
            except (ApiError, TransportError) as exc:
                raise self._classify("refused a search", exc) from exc
            hits = response["hits"]["hits"]
            for hit in hits:
                source = dict(hit["_source"])
                payload = source.pop("payload_json", None)
                source["payload"] = json.loads(payload) if payload else None
                failure = FailedDocument.model_validate(source)
                found[failure.doc_id] = failure
            if len(hits) < 1000:
                return found
            after = hits[-1]["sort"]

    def check(self) -> None:
        try:
            # Short and without retries: readiness must answer in seconds.
            self.client.options(
                request_timeout=min(self.request_timeout, _CHECK_TIMEOUT_S), max_retries=0
            ).info()
        except (ApiError, TransportError) as exc:
            raise self._unavailable("does not answer", exc) from exc
        if not self._ready:
            self._ensure_indices()

    def close(self) -> None:
        self.client.close()

    # --- for the batch-level step (event links, storylines) --------------------------------

    def ensure_index(
        self,
        index: str,
        mappings: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Put an index template for `index` and create the index with these mappings unless
        it exists. An existing index keeps its mappings (changing them needs a reindex)."""
        template: dict[str, Any] = {"mappings": dict(mappings)}
        if settings:
            template["settings"] = dict(settings)
        try:
            self.client.indices.put_index_template(
                name=index,
                index_patterns=[index],
                priority=TEMPLATE_PRIORITY,
                template=template,
                meta={"managed_by": "eventpipe"},
            )
            if self.client.indices.exists(index=index):
                return
            try:
                self.client.indices.create(
                    index=index, mappings=dict(mappings), settings=dict(settings or {})
                )
            except ApiError as exc:
                # Another sink may have created it meanwhile: fine.
                if _error_type(exc.body) != "resource_already_exists_exception":
                    raise
        except (ApiError, TransportError) as exc:
            raise self._classify(f"refused to set up index {index}", exc) from exc

    def bulk_index(self, index: str, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Index (overwrite) each `(id, source)` into `index`; ids over 512 bytes are replaced
        by their SHA-256. Returns how many were indexed. Raises BackendUnavailable when the
        cluster is unreachable or overloaded, StorageError naming a refused document."""
        return self._bulk(
            _Action(index, bounded_id(doc_id), source, f"document {doc_id!r} in {index}")
            for doc_id, source in docs
        )

    def save_batch_outputs(self, job_id: str, batch_id: str,
                           links: Sequence[Mapping[str, Any]],
                           storylines: Sequence[Mapping[str, Any]],
                           stats: Mapping[str, Any], result_version: int = 1) -> None:
        """Index a job's event links, storylines and statistics (ids derived from the job, so
        re-running the batch-level step overwrites them)."""
        keyword = {"type": "keyword"}
        self.ensure_index(self.index_name("event-links"), {"properties": {
            "job_id": keyword, "source_doc_id": keyword, "target_doc_id": keyword,
            "score": {"type": "float"}, "evidence": {"type": "flattened"}}})
        self.ensure_index(self.index_name("storylines"), {"properties": {
            "job_id": keyword, "storyline_id": keyword, "title": {"type": "text"},
            "doc_ids": keyword, "events": {"type": "flattened"}}})
        self.ensure_index(self.index_name("batch-stats"), {"properties": {
            "job_id": keyword, "batch_id": keyword, "stats": {"type": "flattened"}}})
        self.bulk_index(self.index_name("event-links"), (
            (f"{job_id}:{x['source_doc_id']}:{x['source_event']}:{x['target_doc_id']}:"
             f"{x['target_event']}", x) for x in links))
        self.bulk_index(self.index_name("storylines"),
                        ((f"{job_id}:{x['storyline_id']}", x) for x in storylines))
        self.bulk_index(self.index_name("batch-stats"),
                        [(job_id, {"job_id": job_id, "batch_id": batch_id, "stats": stats})])

    def refresh(self, *indices: str) -> None:
        """Make everything saved so far searchable (default: this backend's two indices)."""
        try:
            self.client.indices.refresh(
                index=list(indices or (self.documents_index, self.failures_index))
            )
        except (ApiError, TransportError) as exc:
            raise self._classify("refused a refresh", exc) from exc

    # --- internals ---------------------------------------------------------------------------

    def _ensure_indices(self) -> None:
        self.ensure_index(self.documents_index, DOCUMENTS_MAPPINGS, DOCUMENTS_SETTINGS)
        self.ensure_index(self.failures_index, FAILURES_MAPPINGS)
        self._ready = True
        log.info("elasticsearch indices ready", extra={
            "url": self.url, "indices": [self.documents_index, self.failures_index]})

    def _bulk(self, actions: Iterable[_Action]) -> int:
        if not self._ready:  # an index went missing earlier: set it up again first
            self._ensure_indices()
        done = 0
        for chunk in _chunks(actions):
            body = b"".join(line for _, lines in chunk for line in lines)
            try:
                response: ApiResponse[Any] = self.client.perform_request(
                    "POST",
                    "/_bulk",
                    headers={"accept": "application/json",
                             "content-type": "application/x-ndjson"},
                    body=body,
                )
            except (ApiError, TransportError) as exc:
                what = chunk[0][0].label if len(chunk) == 1 else f"{len(chunk)} documents"
                raise self._classify(f"refused a bulk request of {what}", exc) from exc
            self._raise_item_errors([a for a, _ in chunk], response.body)
            done += len(chunk)
        return done

    def _raise_item_errors(self, actions: list[_Action], body: Any) -> None:
        if not isinstance(body, dict) or not body.get("errors"):
            return
        transient: list[str] = []
        refused: list[str] = []
        for action, item in zip(actions, body.get("items", []), strict=False):
            result: dict[str, Any] = (
                next(iter(item.values()), {}) if isinstance(item, dict) else {}
            )
            error = result.get("error")
            if not error:
                continue
            status = int(result.get("status", 0))
            reason = f"{action.label}: {status} {_describe_error(error)}"
            if status >= 500 or status in _TRANSIENT_ITEM_STATUS:
                if status == 404:
                    self._ready = False  # recreate the missing index before the retry
                transient.append(reason)
            else:
                refused.append(reason)
        if transient:
            raise BackendUnavailable(self._scrub(
                f"Elasticsearch at {self.url} could not index {_summary(transient)}"))
        if refused:
            raise StorageError(self._scrub(f"Elasticsearch refused {_summary(refused)}"))

    def _classify(self, doing: str, exc: ApiError | TransportError) -> StorageError:
        """Unreachable, overloaded, or refusing our credentials: BackendUnavailable (retry);
        any other refusal: StorageError."""
        if isinstance(exc, TransportError):
            return self._unavailable("is unreachable", exc)
        status = exc.meta.status
        if status in (401, 403) or status == 429 or status >= 500 or 200 <= status < 300:
            # 2xx here: the server is not Elasticsearch (the client's product check)
            return self._unavailable(doing, exc)
        return StorageError(self._scrub(
            f"Elasticsearch at {self.url} {doing}: {status} {_describe_error(exc.body)}"))

    def _unavailable(self, doing: str, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(self._scrub(
            f"Elasticsearch at {self.url} {doing}: {type(exc).__name__}: {exc}"[:2000]))

    def _scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message


def _failure_source(failure: FailedDocument) -> dict[str, Any]:
    source = failure.model_dump(mode="json", exclude={"payload"})
    if failure.payload is not None:
        source["payload_json"] = failure.payload.model_dump_json()
    return source


def _chunks(actions: Iterable[_Action]) -> Iterator[list[tuple[_Action, tuple[bytes, bytes]]]]:
    chunk: list[tuple[_Action, tuple[bytes, bytes]]] = []
    size = 0
    for action in actions:
        meta = _encode({"index": {"_index": action.target, "_id": action.id}}) + b"\n"
        try:
            source = _encode(action.source) + b"\n"
        except (TypeError, ValueError) as exc:  # NaN (json.loads accepts it) is not JSON
            raise StorageError(f"cannot send {action.label} to Elasticsearch: {exc}") from exc
        if chunk and size + len(meta) + len(source) > MAX_BULK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append((action, (meta, source)))
        size += len(meta) + len(source)
    if chunk:
        yield chunk


def _error_type(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("type") if isinstance(error, dict) else None


def _describe_error(error: Any) -> str:
    """`type: reason (caused by: ...)`, short: reasons may quote the document's content."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]
    if not isinstance(error, dict):
        return str(error)[:300]
    text = f"{error.get('type')}: {str(error.get('reason'))[:300]}"
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type')}: {str(cause.get('reason'))[:200]})"
    return text


def _summary(reasons: list[str]) -> str:
    more = f"; and {len(reasons) - 1} more" if len(reasons) > 1 else ""
    return reasons[0] + more
