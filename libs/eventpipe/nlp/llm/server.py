"""llama.cpp's OpenAI-compatible server (`llama-server`) as a process of the local stack: how
to find the program, the command that serves a GGUF file, and waiting until it answers.

Why this server: it runs GGUF models on a CPU, constrains answers to a JSON Schema sent as
`response_format` (what the `openai` backend sends), and builds from source with cmake and
a C++ compiler alone (`make llm-server`), where no wheel of llama-cpp-python fits."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from eventpipe.errors import StackError, UsageError
from eventpipe.settings import Settings

# Where `make llm-server` puts the program, in the source tree.
BUILT = Path(__file__).resolve().parents[4] / ".llama" / "bin" / "llama-server"
# Requests served at once: the openai backend's default of 4 in flight, one slot each.
SLOTS = 4
# Context per slot: the candidates prompt (system text, ten candidates with their sentence)
# and its answer fit in well under 2,048 tokens.
CONTEXT_PER_SLOT = 2048


def server_binary(settings: Settings) -> Path:
    """The llama-server program to run; UsageError says how to get one."""
    if settings.llm_server_binary is not None:
        if not settings.llm_server_binary.is_file():
            raise UsageError(f"EVENTPIPE_LLM_SERVER_BINARY: no such file: "
                             f"{settings.llm_server_binary}")
        return settings.llm_server_binary
    if BUILT.is_file():
        return BUILT
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    raise UsageError("llama-server not found: run `make llm-server` (builds it into "
                     ".llama/bin) or set EVENTPIPE_LLM_SERVER_BINARY")


def check_model(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"--llm-server / EVENTPIPE_LLM_SERVER_MODEL: no such file: {path}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise UsageError(f"{path} is not a GGUF file")
    return path.resolve()


def server_command(binary: Path, model: Path, port: int, threads: int | None = None
                   ) -> list[str]:
    command = [str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--parallel", str(SLOTS), "--ctx-size", str(SLOTS * CONTEXT_PER_SLOT),
               "--alias", model_name(model)]
    if threads is not None:
        command += ["--threads", str(threads)]
    return command


def model_name(model: Path) -> str:
    """The name the server serves the model under (the file's stem)."""
    return model.stem


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until the server has loaded its model (`/health` answers 200); StackError when it
    exits or takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (code := process.poll()) is not None:
            raise StackError(f"llama-server exited with code {code} while loading its model")
        if time.monotonic() > deadline:
            raise StackError(f"llama-server not ready after {timeout_s} s")
        time.sleep(0.2)
