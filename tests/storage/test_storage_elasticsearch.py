"""The Elasticsearch backend against a server speaking the Elasticsearch REST API (noida-db by
default; a real one with EVENTPIPE_TEST_ELASTICSEARCH_URL). Needs the fixtures_es plugin."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fixtures_es import NoidaElasticsearch, drop_prefix, free_port
from pydantic import SecretStr

from eventpipe.models import (
    DocumentMessage,
    Entity,
    Event,
    FailedDocument,
    Participant,
    PrepModifier,
    Stage,
    Triplet,
)
from eventpipe.settings import Settings
from eventpipe.storage import elasticsearch as es_module
from eventpipe.storage.base import BackendUnavailable, StorageError, result_record
from eventpipe.storage.elasticsearch import ElasticsearchBackend, document_key

SAVED_AT = "2025-01-02T03:04:05Z"


def doc(doc_id: str, job: str = "job-1", text: str | None = None,
        label: str = "PERSON") -> DocumentMessage:
    text = text if text is not None else f"Alice met Bob in Paris ({doc_id})."
    return DocumentMessage(
        job_id=job, batch_id="batch-1", doc_id=doc_id, text=text,
        meta={"source": "test", "nested": {"n": 1, "tags": ["a", "b"]}},
        entities=[Entity(text="Alice", label=label, start_char=0, end_char=5),
                  Entity(text="Paris", label="GPE", start_char=17, end_char=22)],
        triplets=[Triplet(subject="Alice", action="meet", object="Bob", start_char=6,
                          end_char=9, prep_modifiers=[PrepModifier(prep="in", object="Paris")])],
        events=[Event(trigger="met", type="Meet", location="Paris",
                      participants=[Participant(text="Alice", role="agent", label=label),
                                    Participant(text="Bob", role="patient")])],
        timings_ms={"ner": 1.5, "dp": 2.25},
    )


def records(*docs: DocumentMessage) -> list[dict[str, Any]]:
    return [result_record(d, SAVED_AT) for d in docs]


def count(backend: ElasticsearchBackend, query: dict[str, Any] | None = None,
          index: str | None = None) -> int:
    index = index or backend.documents_index
    backend.refresh(index)
    body = backend.client.count(index=index, query=query).body
    return int(body["count"])


def source(backend: ElasticsearchBackend, job_id: str, doc_id: str,
           index: str | None = None) -> dict[str, Any]:
    got = backend.client.get(index=index or backend.documents_index,
                             id=document_key(job_id, doc_id)).body
    assert got["found"]
    return dict(got["_source"])


# --- saving ---------------------------------------------------------------------------------


def test_documents_are_saved_once_and_a_redelivery_overwrites(
        es_backend: ElasticsearchBackend) -> None:
    batch = records(doc("d1"), doc("d2"), doc("d3"))
    es_backend.save_documents(batch)
    assert count(es_backend) == 3
    es_backend.save_documents(batch)
    assert count(es_backend) == 3
    changed = records(doc("d2", text="updated text"))
    es_backend.save_documents(changed)
    assert count(es_backend) == 3
    assert source(es_backend, "job-1", "d2")["text"] == "updated text"


def test_get_returns_the_stored_record(es_backend: ElasticsearchBackend) -> None:
    [record] = records(doc("d1"))
    es_backend.save_documents([record])
    assert source(es_backend, "job-1", "d1") == record


def test_term_queries_on_job_and_entity_label(es_backend: ElasticsearchBackend) -> None:
    es_backend.save_documents(records(doc("a1", job="job-a"), doc("a2", job="job-a"),
                                      doc("b1", job="job-b", label="ORG")))
    assert count(es_backend, {"term": {"job_id": "job-a"}}) == 2
    assert count(es_backend, {"term": {"batch_id": "batch-1"}}) == 3
    # Nested: label and text of the same entity.
    person = {"nested": {"path": "entities", "query": {"bool": {"filter": [
        {"term": {"entities.label": "PERSON"}}, {"term": {"entities.text": "Alice"}}]}}}}
    assert count(es_backend, person) == 2
    assert count(es_backend, {"nested": {"path": "events", "query": {
        "term": {"events.type": "Meet"}}}}) == 3
    assert count(es_backend, {"match": {"text": "paris"}}) == 3


def test_a_reprocess_keeps_both_versions_and_the_newest_is_found_first(
        es_backend: ElasticsearchBackend) -> None:
    first = doc("v1", job="job-v1").model_copy(update={"models": {"llm": "rules"}})
    second = doc("v1", job="job-v2").model_copy(update={"result_version": 2,
                                                        "models": {"llm": "openai:m"}})
    es_backend.save_documents(records(first, second))
    assert count(es_backend, {"term": {"batch_id": "batch-1"}}) == 2
    assert source(es_backend, "job-v1", "v1")["versions"]["models"] == {"llm": "rules"}
    es_backend.refresh(es_backend.documents_index)
    hits = es_backend.client.search(
        index=es_backend.documents_index, query={"term": {"id": "v1"}},
        sort=[{"result_version": "desc"}], size=1).body["hits"]["hits"]
    assert hits[0]["_source"]["job_id"] == "job-v2"
    assert hits[0]["_source"]["result_version"] == 2


def test_awkward_text_and_ids_round_trip_unchanged(es_backend: ElasticsearchBackend) -> None:
    controls = "".join(chr(c) for c in range(32))
    text = ('quotes " \' backslashes \\ \\\\ \\n controls ' + controls
            + " NUL \x00 emoji 😀👩‍💻 CJK 漢字 RTL مرحبا \u2028 ")
    text += "x" * (100 * 1024 - len(text))
    odd_id = "a/b c?d#e&f%20é"
    long_id = "L" * 512
    batch = records(doc("awkward", text=text), doc(odd_id), doc(long_id))
    es_backend.save_documents(batch)
    assert count(es_backend) == 3
    assert source(es_backend, "job-1", "awkward") == batch[0]
    assert source(es_backend, "job-1", odd_id)["id"] == odd_id
    assert len(document_key("job-1", long_id)) == 64  # hashed: _id is at most 512 bytes
    assert source(es_backend, "job-1", long_id)["id"] == long_id


def test_unpaired_surrogate_is_stored_as_replacement_character(
        es_backend: ElasticsearchBackend) -> None:
    es_backend.save_documents(records(doc("s", text="a\ud800b")))
    assert source(es_backend, "job-1", "s")["text"] == "a\ufffdb"


def test_large_batches_are_split_into_several_bulk_requests(
        es_backend: ElasticsearchBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(es_module, "MAX_BULK_BYTES", 4096)
    es_backend.save_documents(records(*(doc(f"d{i}", text="y" * 1500) for i in range(10))))
    assert count(es_backend) == 10


def test_refused_document_is_named_and_the_others_are_saved(
        es_backend: ElasticsearchBackend) -> None:
    good, bad = records(doc("good"), doc("bad"))
    bad["saved_at"] = "not a date"
    with pytest.raises(StorageError) as info:
        es_backend.save_documents([good, bad])
    assert not isinstance(info.value, BackendUnavailable)
    assert "'bad'" in str(info.value) and "'job-1'" in str(info.value)
    assert count(es_backend) == 1


def test_a_document_that_is_not_json_is_refused_by_name(
        es_backend: ElasticsearchBackend) -> None:
    [record] = records(doc("nan"))
    record["meta"] = {"score": float("nan")}  # json.loads("NaN") gives one
    with pytest.raises(StorageError, match="'nan' of job 'job-1'") as info:
        es_backend.save_documents([record])
    assert not isinstance(info.value, BackendUnavailable)


def test_failures_are_indexed_with_stage_and_error(es_backend: ElasticsearchBackend) -> None:
    failures = [
        FailedDocument(job_id="job-1", batch_id="batch-1", doc_id="f1", stage=Stage.NER,
                       error="ValueError: boom"),
        FailedDocument(job_id="job-1", batch_id="batch-1", doc_id="f2", stage=Stage.SINK,
                       error="too large", at="yesterday"),  # foreign producer's time
    ]
    es_backend.save_failures(failures)
    es_backend.save_failures(failures)
    index = es_backend.failures_index
    assert count(es_backend, index=index) == 2
    got = source(es_backend, "job-1", "f1", index=index)
    assert (got["stage"], got["error"], got["doc_id"]) == ("ner", "ValueError: boom", "f1")
    assert count(es_backend, {"term": {"stage": "sink"}}, index=index) == 1


def test_failure_records_come_back_with_their_payload(es_backend: ElasticsearchBackend) -> None:
    payload = doc("f3")
    failure = FailedDocument(job_id="job-2", batch_id="batch-1", doc_id="f3", stage=Stage.LLM,
                             error="BackendUnreachable: down", failure_class="transient",
                             attempts=4, first_failed_at="2026-01-01T00:00:00Z",
                             payload=payload)
    bare = FailedDocument(job_id="job-2", batch_id="batch-1", doc_id="line-1",
                          stage=Stage.INGEST, error="not JSON")
    es_backend.save_failures([failure, bare])
    es_backend.refresh()
    found = es_backend.load_failures("batch-1", "job-2")
    assert found == {"f3": failure, "line-1": bare}
    assert es_backend.load_failures("batch-1", "job-unknown") == {}


def test_bulk_index_helper_is_idempotent(es_backend: ElasticsearchBackend) -> None:
    index = es_backend.index_name("links")
    docs = [("e1->e2", {"from": "e1", "to": "e2"}), ("e2->e3", {"from": "e2", "to": "e3"})]
    assert es_backend.bulk_index(index, docs) == 2
    assert es_backend.bulk_index(index, iter(docs)) == 2
    assert count(es_backend, index=index) == 2
    assert es_backend.bulk_index(index, []) == 0


def test_production_mappings_are_installed(es_backend: ElasticsearchBackend) -> None:
    index = es_backend.documents_index
    props = es_backend.client.indices.get_mapping(index=index).body[index]["mappings"][
        "properties"]
    assert props["job_id"]["type"] == "keyword"
    assert props["text"]["type"] == "text"
    assert props["saved_at"]["type"] == "date"
    assert props["meta"]["type"] == "flattened"
    assert props["entities"]["type"] == "nested"
    assert props["entities"]["properties"]["label"]["type"] == "keyword"
    assert props["events"]["properties"]["type"]["type"] == "keyword"
    templates = es_backend.client.indices.get_index_template(name=index).body
    assert templates["index_templates"][0]["index_template"]["index_patterns"] == [index]


def test_a_second_backend_on_the_same_prefix_starts(make_es_backend: Any) -> None:
    first = make_es_backend()
    first.save_documents(records(doc("d1")))
    second = make_es_backend()  # templates put again, indices already there
    second.save_documents(records(doc("d1")))
    assert count(second) == 1


def test_from_settings(es_url: str) -> None:
    settings = Settings(elasticsearch_url=es_url, elasticsearch_index_prefix="fromsettings",
                        elasticsearch_username="elastic",
                        elasticsearch_password=SecretStr("pw"))
    backend = ElasticsearchBackend.from_settings(settings)
    try:
        assert backend.documents_index == "fromsettings-documents"
        backend.check()
    finally:
        drop_prefix(backend)
        backend.close()


def test_bad_prefix_and_credentials_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="prefix"):
        ElasticsearchBackend("http://127.0.0.1:1", index_prefix="Upper")
    with pytest.raises(ValueError, match="API key"):
        ElasticsearchBackend("http://127.0.0.1:1", username="u", password="p", api_key="k")
    with pytest.raises(ValueError, match="URL") as info:
        ElasticsearchBackend("http://u:topsecret@127.0.0.1")  # no port
    assert "topsecret" not in str(info.value)


# --- unreachable --------------------------------------------------------------------------------


def test_unreachable_at_start_is_backend_unavailable_without_the_password() -> None:
    url = f"http://elastic:s3cret-in-url@127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        ElasticsearchBackend(url, index_prefix="down", request_timeout=2.0)
    assert time.monotonic() - began < 5
    assert "Elasticsearch" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_server_gone_makes_check_and_save_backend_unavailable(
        es_server: NoidaElasticsearch) -> None:
    backend = ElasticsearchBackend(es_server.url, index_prefix="gone", username="elastic",
                                   password="hunter2-secret")
    try:
        backend.check()
        es_server.kill()  # nothing listens on its port any more
        began = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            backend.check()
        assert time.monotonic() - began < 5
        assert "Elasticsearch" in str(info.value)
        assert "hunter2" not in str(info.value)
        with pytest.raises(BackendUnavailable):
            backend.save_documents(records(doc("d1")))
        with pytest.raises(BackendUnavailable):
            backend.save_failures([FailedDocument(job_id="j", batch_id="b", doc_id="d",
                                                  stage=Stage.NER, error="e")])
    finally:
        backend.close()


def test_bulk_item_errors_are_classified(es_backend: ElasticsearchBackend) -> None:
    action = es_module._Action("i", "id", {}, "document 'd' of job 'j'")

    def body(status: int, kind: str) -> dict[str, Any]:
        return {"errors": True, "items": [
            {"index": {"_id": "id", "status": status, "error": {"type": kind, "reason": "r"}}}]}

    for status, kind in [(429, "es_rejected_execution_exception"), (503, "unavailable"),
                         (403, "cluster_block_exception")]:
        with pytest.raises(BackendUnavailable):
            es_backend._raise_item_errors([action], body(status, kind))
    with pytest.raises(StorageError, match="document 'd' of job 'j'") as info:
        es_backend._raise_item_errors([action], body(400, "document_parsing_exception"))
    assert not isinstance(info.value, BackendUnavailable)
    es_backend._raise_item_errors([action], {"errors": False, "items": [{"index": {}}]})


# --- what goes over the wire -----------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers like Elasticsearch 8 would to what the backend asks at start, and records the
    media types of each request."""

    seen: list[tuple[str, str | None, str | None]] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen.append((self.path, self.headers.get("accept"),
                          self.headers.get("content-type")))
        for header in ("accept", "content-type"):
            if "compatible-with=9" in (self.headers.get(header) or ""):
                self._send(400, b'{"error":{"type":"media_type_header_exception"},"status":400}')
                return
        self._send(200, b'{"acknowledged":true,"errors":false,"items":[]}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-elastic-product", "Elasticsearch")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def do_HEAD(self) -> None:
        self.seen.append((self.path, self.headers.get("accept"), None))
        self.send_response(404)
        self.send_header("x-elastic-product", "Elasticsearch")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str | None, str | None]]]]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_requests_carry_plain_json_media_types(
        recorder: tuple[str, list[tuple[str, str | None, str | None]]]) -> None:
    """The 9.x client would send `compatible-with=9`, which Elasticsearch 8 refuses."""
    url, seen = recorder
    backend = ElasticsearchBackend(url, index_prefix="wire")
    try:
        backend.save_documents(records(doc("d1")))
        backend.check()
    finally:
        backend.close()
    paths = [path for path, _, _ in seen]
    assert "/_bulk" in paths and "/_index_template/wire-documents" in paths
    for path, accept, content_type in seen:
        assert accept == "application/json", path
        assert content_type in (None, "application/json", "application/x-ndjson"), path
