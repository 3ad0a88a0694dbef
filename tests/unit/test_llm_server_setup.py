"""What the stack and the CLI make of `--llm-server MODEL.gguf` before anything starts: a
wrong file is refused with what to do, and the events stage is pointed at the server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from eventpipe.cli.options import settings_for
from eventpipe.errors import UsageError
from eventpipe.nlp.llm import server as llm_server
from eventpipe.settings import Settings
from eventpipe.stack import Stack


def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-model.Q4.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def test_a_missing_or_foreign_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        llm_server.check_model(tmp_path / "absent.gguf")
    other = tmp_path / "model.bin"
    other.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(UsageError, match="is not a GGUF file"):
        llm_server.check_model(other)
    assert llm_server.check_model(gguf(tmp_path)) == gguf(tmp_path).resolve()


def test_a_missing_server_program_says_how_to_build_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="EVENTPIPE_LLM_SERVER_BINARY: no such file"):
        llm_server.server_binary(Settings(llm_server_binary=tmp_path / "nope"))
    monkeypatch.setattr(llm_server, "BUILT", tmp_path / "not-built")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="run `make llm-server`"):
        llm_server.server_binary(Settings())
    monkeypatch.setenv("EVENTPIPE_LLM_SERVER_MODEL", str(gguf(tmp_path)))
    with pytest.raises(UsageError, match="make llm-server"):
        settings_for(SimpleNamespace(llm_server=None))


def test_the_stack_points_the_events_stage_at_its_server(tmp_path: Path) -> None:
    model = gguf(tmp_path)
    stack = Stack(Settings(data_dir=tmp_path / "data", llm_server_model=model,
                           llm_server_port=8999))
    assert stack.service_names[0] == "llm_server"
    s = stack.settings
    assert (s.llm_backend, s.llm_base_url, s.llm_model) == (
        "openai", "http://127.0.0.1:8999/v1", "tiny-model.Q4")
    command = llm_server.server_command(Path("/bin/llama-server"), model, 8999, threads=2)
    assert command[:3] == ["/bin/llama-server", "--model", str(model)]
    assert command[command.index("--port") + 1] == "8999"
    assert command[command.index("--threads") + 1] == "2"
    assert command[command.index("--alias") + 1] == "tiny-model.Q4"
    # Without a model, nothing changes.
    plain = Stack(Settings(data_dir=tmp_path / "data"))
    assert "llm_server" not in plain.service_names and plain.settings.llm_backend == "rules"
