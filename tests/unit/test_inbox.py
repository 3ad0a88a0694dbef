"""Which files ingest may open: only under its input roots, links resolved first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventpipe.inbox import InputRefused, allowed_input, inbox_dir, place_in_inbox
from eventpipe.settings import Settings


def test_only_files_under_an_input_root_are_allowed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", input_roots=str(tmp_path / "shared"))
    (tmp_path / "shared").mkdir()
    inside = tmp_path / "shared" / "in.jsonl"
    inside.write_text("{}\n")
    outside = tmp_path / "private.jsonl"
    outside.write_text("{}\n")
    assert allowed_input(settings, inside) == inside.resolve()
    for refused in (outside, tmp_path / "shared" / ".." / "private.jsonl", tmp_path / "shared"):
        with pytest.raises(InputRefused, match="not under an input root"):
            allowed_input(settings, refused)
    link = tmp_path / "shared" / "link.jsonl"
    link.symlink_to(outside)  # a link inside a root to a file outside: refused
    with pytest.raises(InputRefused):
        allowed_input(settings, link)


def test_the_cli_places_other_files_in_the_inbox_with_its_own_permissions(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    src = tmp_path / "batch.jsonl"
    src.write_text('{"id": 1, "text": "t"}\n')
    placed = place_in_inbox(settings, src, "job")
    assert placed == inbox_dir(settings) / "job.jsonl"
    assert placed.read_text() == src.read_text()
    assert allowed_input(settings, placed) == placed.resolve()
    assert inbox_dir(settings).stat().st_mode & 0o777 == 0o700
    src.write_text('{"id": 2, "text": "u"}\n')  # resubmitted: replaced, not appended
    src2 = tmp_path / "other.jsonl"
    src2.write_text('{"id": 3, "text": "v"}\n')
    assert place_in_inbox(settings, src2, "job").read_text() == src2.read_text()
    assert place_in_inbox(settings, placed, "job") == placed.resolve()  # already inside
    assert not [p for p in os.listdir(inbox_dir(settings)) if p.endswith(".tmp")]
