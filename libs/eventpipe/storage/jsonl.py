"""The JSONL backend: `extracted_events_{batch_id}.jsonl`, one line per processed document,
and `failed_documents_{batch_id}.jsonl`, one line per failure record (payload included; the
newest line of a document is its record, the checkpoint says whether it is still failed).
A reprocess (result version N > 1) writes `extracted_events_{batch_id}.vN.jsonl` beside the
first, and its links, storylines and statistics likewise with `.vN` before the suffix.

Idempotent: the ids already in a file are indexed when it is opened, so a document
redelivered after a crash is not appended twice. A half-written last line (a crash inside a
write) is cut off at that moment. One sink process owns a data directory's JSONL files.

Open files are bounded: the least recently written is closed when more than
`max_open_files` batches are in flight (a sink serving thousands of batches must not run out
of file descriptors), and indexed again, reading line by line, if it is needed again."""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

import pydantic_core

from eventpipe.atomic import atomic_write_bytes
from eventpipe.models import FailedDocument
from eventpipe.storage.base import ResultRecord
from eventpipe.storage.names import safe_name

log = logging.getLogger(__name__)


def _version(result_version: int) -> str:
    """The file name part of a result version: none for the first (the names users know),
    `.vN` for the versions `eventpipe reprocess` makes beside it."""
    return "" if result_version == 1 else f".v{result_version}"


def results_path(data_dir: Path, batch_id: str, result_version: int = 1) -> Path:
    return data_dir / f"extracted_events_{safe_name(batch_id)}{_version(result_version)}.jsonl"


def batch_output_path(data_dir: Path, batch_id: str,
                      kind: Literal["event_links", "storylines", "batch_stats"],
                      result_version: int = 1) -> Path:
    """Where the batch-level step writes a batch's links, storylines or statistics."""
    suffix = "json" if kind == "batch_stats" else "jsonl"
    return data_dir / f"{kind}_{safe_name(batch_id)}{_version(result_version)}.{suffix}"


def result_versions(data_dir: Path, batch_id: str) -> list[int]:
    """The result versions of a batch that have a results file, oldest first."""
    found = [1] if results_path(data_dir, batch_id).exists() else []
    prefix = f"extracted_events_{safe_name(batch_id)}.v"
    for path in data_dir.glob(f"{prefix}*.jsonl"):
        number = path.name[len(prefix):-len(".jsonl")]
        if number.isdigit() and int(number) > 1:
            found.append(int(number))
    return sorted(found)


def newest_results_path(data_dir: Path, batch_id: str) -> Path:
    """The results file of a batch's newest result version: what readers get by default."""
    versions = result_versions(data_dir, batch_id)
    return results_path(data_dir, batch_id, versions[-1] if versions else 1)


def failures_path(data_dir: Path, batch_id: str) -> Path:
    return data_dir / f"failed_documents_{safe_name(batch_id)}.jsonl"


def load_failure_records(data_dir: Path, batch_id: str, job_id: str
                         ) -> dict[str, FailedDocument]:
    """The newest failure record of each document of a job; a line that cannot be read (a
    cut-off last line, a newer writer's format) is skipped with a warning."""
    path = failures_path(data_dir, batch_id)
    found: dict[str, FailedDocument] = {}
    if not path.exists():
        return found
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                failure = FailedDocument.model_validate_json(line)
            except ValueError as exc:
                log.warning("failure record not read", extra={"path": str(path),
                                                              "line": number,
                                                              "reason": str(exc)[:300]})
                continue
            if failure.job_id == job_id:
                found[failure.doc_id] = failure
    return found


def encode_line(record: ResultRecord) -> bytes:
    # pydantic-core's encoder (already a dependency) is 4-6x faster than json.dumps on these
    # records and links: the batch-level step writes ~130 links per document.
    try:
        return pydantic_core.to_json(record) + b"\n"
    except pydantic_core.PydanticSerializationError:  # an unpaired surrogate: keep it, escaped
        return json.dumps(record).encode() + b"\n"


def decode_line(line: str | bytes) -> Any:
    try:
        return pydantic_core.from_json(line)
    except ValueError:  # pydantic-core refuses an escaped unpaired surrogate; json takes it
        return json.loads(line)


def _line_key(data: dict[str, Any], key: str) -> str:
    if key == "id":
        return str(data["id"])
    # A failure record: one line per failure event, so a redelivered record is not repeated.
    return "|".join(str(data.get(k)) for k in ("job_id", "doc_id", "at", "attempts", "replays"))


class _OpenFile:
    def __init__(self, path: Path, key: str = "id") -> None:
        self.path = path
        self.key = key
        self.ids: set[str] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_and_index()
        self.handle: IO[bytes] = path.open("ab")

    def _repair_and_index(self) -> None:
        """Index the ids line by line (never the whole file in memory); cut a last line
        without its newline."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as f:
            end = 0
            for line in f:
                if not line.endswith(b"\n"):
                    break
                end += len(line)
                if line.strip():
                    self.ids.add(_line_key(decode_line(line), self.key))
            size = f.seek(0, os.SEEK_END)
            if end != size:
                log.warning("cut a half-written last line",
                            extra={"path": str(self.path), "bytes": size - end})
                f.truncate(end)


class JsonlStore:
    name = "jsonl"

    def __init__(self, data_dir: Path, fsync: bool = True, max_open_files: int = 32) -> None:
        self.data_dir = data_dir
        self.fsync = fsync
        self.max_open_files = max(1, max_open_files)
        self._files: OrderedDict[str, _OpenFile] = OrderedDict()  # least recent first

    def _file(self, batch_id: str, failures: bool = False, result_version: int = 1
              ) -> _OpenFile:
        name = f"failures\0{batch_id}" if failures else f"{batch_id}\0{result_version}"
        f = self._files.get(name)
        if f is not None:
            self._files.move_to_end(name)
            return f
        while len(self._files) >= self.max_open_files:
            _, oldest = self._files.popitem(last=False)
            self._sync(oldest)
            oldest.handle.close()
        f = self._files[name] = (
            _OpenFile(failures_path(self.data_dir, batch_id), key="failure") if failures
            else _OpenFile(results_path(self.data_dir, batch_id, result_version)))
        return f

    def save_documents(self, records: Sequence[ResultRecord]) -> None:
        self.save_many(records)

    def save_failures(self, failures: Sequence[FailedDocument]) -> None:
        """Append each failure record (with its payload) to its batch's failures file."""
        touched: dict[str, _OpenFile] = {}
        for failure in failures:
            f = self._file(failure.batch_id, failures=True)
            data = failure.model_dump(mode="json", exclude_none=True)
            key = _line_key(data, "failure")
            if key in f.ids:
                continue
            f.handle.write(encode_line(data))
            f.ids.add(key)
            touched[failure.batch_id] = f
        for f in touched.values():
            if not f.handle.closed:  # else synced when it was closed
                self._sync(f)

    def load_failures(self, batch_id: str, job_id: str) -> dict[str, FailedDocument]:
        return load_failure_records(self.data_dir, batch_id, job_id)

    def check(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def save_batch_outputs(self, job_id: str, batch_id: str,
                           links: Sequence[dict[str, Any]],
                           storylines: Sequence[dict[str, Any]], stats: dict[str, Any],
                           result_version: int = 1) -> None:
        """`event_links_{batch}.jsonl`, `storylines_{batch}.jsonl`, `batch_stats_{batch}.json`
        (`.vN` before the suffix for result version N), each replaced whole and atomically
        (re-running the step overwrites them)."""
        v = result_version
        for path, rows in ((batch_output_path(self.data_dir, batch_id, "event_links", v), links),
                           (batch_output_path(self.data_dir, batch_id, "storylines", v),
                            storylines)):
            atomic_write_bytes(path, b"".join(encode_line(r) for r in rows), self.fsync)
        atomic_write_bytes(batch_output_path(self.data_dir, batch_id, "batch_stats", v),
                           json.dumps(stats, indent=2, ensure_ascii=False).encode(), self.fsync)

    def save_live_storylines(self, batch_id: str, storylines: Sequence[dict[str, Any]],
                             result_version: int = 1) -> None:
        """A running job's storylines so far, in the file the end step replaces."""
        atomic_write_bytes(batch_output_path(self.data_dir, batch_id, "storylines",
                                             result_version),
                           b"".join(encode_line(r) for r in storylines), self.fsync)

    def load_documents(self, batch_id: str, job_id: str, result_version: int = 1
                       ) -> list[ResultRecord]:
        path = results_path(self.data_dir, batch_id, result_version)
        if not path.exists():
            return []
        with path.open(encoding="utf-8") as f:
            return [r for r in map(decode_line, f) if r.get("job_id") == job_id]

    def save_many(self, records: Sequence[ResultRecord]) -> int:
        """Append the records not yet in their files, then flush (and fsync) each file once.
        Returns how many lines were written."""
        touched: dict[str, _OpenFile] = {}
        written = 0
        for record in records:
            version = int(record.get("result_version") or 1)
            f = self._file(record["batch_id"], result_version=version)
            if record["id"] in f.ids:
                continue
            f.handle.write(encode_line(record))
            f.ids.add(record["id"])
            touched[f"{record['batch_id']}\0{version}"] = f
            written += 1
        for f in touched.values():
            if not f.handle.closed:  # else synced when it was closed
                self._sync(f)
        return written

    def _sync(self, f: _OpenFile) -> None:
        f.handle.flush()
        if self.fsync:
            os.fsync(f.handle.fileno())

    def close(self) -> None:
        for f in self._files.values():
            f.handle.close()
        self._files.clear()
