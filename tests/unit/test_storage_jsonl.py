from __future__ import annotations

import json
from pathlib import Path

from eventpipe.atomic import atomic_write_json
from eventpipe.checkpoint.files import checkpoint_path
from eventpipe.storage.jsonl import JsonlStore, results_path
from eventpipe.storage.names import safe_name


def rec(doc_id: str, batch: str = "b1", text: str = "t") -> dict[str, str]:
    return {"id": doc_id, "batch_id": batch, "text": text}


def test_redelivered_documents_are_not_appended_twice(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path)
    assert store.save_many([rec("a"), rec("b"), rec("a")]) == 2
    store.close()
    store = JsonlStore(tmp_path)  # a restarted sink re-indexes the file
    assert store.save_many([rec("b"), rec("c")]) == 1
    store.close()
    lines = results_path(tmp_path, "b1").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a", "b", "c"]


def test_half_written_last_line_is_cut_at_start(tmp_path: Path) -> None:
    path = results_path(tmp_path, "b1")
    path.write_text(json.dumps(rec("a")) + "\n" + '{"id": "b", "batch_i')
    store = JsonlStore(tmp_path)
    store.save_many([rec("b")])
    store.close()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_awkward_text_round_trips(tmp_path: Path) -> None:
    text = 'quotes " \\ back\\slash \t tab \u0000 nul 🎉 emoji\nnewline ' + "x" * 100_000
    store = JsonlStore(tmp_path)
    store.save_many([rec("a", text=text)])
    store.close()
    assert json.loads(results_path(tmp_path, "b1").read_text())["text"] == text


def test_an_unpaired_surrogate_is_kept_escaped_and_read_back(tmp_path: Path) -> None:
    # The fast encoder refuses it; the line falls back to an escaped one, and reading it
    # back (re-indexing after a restart, the batch-level step) takes it.
    odd = rec("s\ud800", text="broken \udc00 pair")
    store = JsonlStore(tmp_path)
    assert store.save_many([odd, {**rec("a"), "job_id": "j"}, {**odd, "job_id": "j"}]) == 2
    store.close()
    store = JsonlStore(tmp_path)
    assert store.save_many([odd]) == 0
    assert [r["id"] for r in store.load_documents("b1", "j")] == ["a"]
    assert json.loads(results_path(tmp_path, "b1").read_text().splitlines()[0]) == odd
    store.close()


def test_ids_never_become_paths(tmp_path: Path) -> None:
    for hostile in ["../../etc/passwd", "a/b", "..", "x" * 10_000, "nul\x00byte", ".hidden"]:
        name = safe_name(hostile)
        assert "/" not in name and "\x00" not in name and not name.startswith(".")
        assert len(name) <= 128
        assert results_path(tmp_path, hostile).parent == tmp_path
    assert safe_name("batch_2025-01-01.v1") == "batch_2025-01-01.v1"
    assert safe_name("a/b") != safe_name("a_b")
    for bad_job in ["../x", "not-a-uuid", ""]:
        try:
            checkpoint_path(tmp_path, bad_job)
        except ValueError:
            continue
        raise AssertionError(bad_job)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "cp" / "x.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_open_files_are_bounded_and_reopened_files_stay_idempotent(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, max_open_files=3)
    # One call touching more batches than files may be open: each is synced when closed.
    assert store.save_many([rec("a", batch=f"b{n}") for n in range(10)]) == 10
    assert len(store._files) == 3
    assert store.save_many([rec("a", batch=f"b{n}") for n in range(10)]) == 0  # re-indexed
    assert store.save_many([rec("b", batch="b0")]) == 1
    store.close()
    for n in range(10):
        ids = [json.loads(x)["id"] for x in results_path(tmp_path, f"b{n}").read_text()
               .splitlines()]
        assert ids == (["a", "b"] if n == 0 else ["a"])
