"""Runs llama-server on EVENTPIPE_LLM_SERVER_MODEL at EVENTPIPE_LLM_SERVER_PORT as its child:
ready (for the stack) once the model is loaded, stopped by SIGTERM like every service, and
exits when the server does, so the stack's supervisor starts both again."""

from __future__ import annotations

import logging
import subprocess

from eventpipe.errors import StackError, UsageError
from eventpipe.nlp.llm.server import check_model, server_binary, server_command, wait_healthy
from eventpipe.processes import die_with_parent
from eventpipe.runtime.health import HEARTBEAT, READINESS
from eventpipe.runtime.loop import ready_file
from eventpipe.runtime.service import install_stop_handlers, main_for
from eventpipe.settings import Settings

log = logging.getLogger(__name__)
# Loading a small GGUF takes seconds; a large one on a slow disk, minutes.
LOAD_TIMEOUT_S = 600.0


def run(settings: Settings) -> None:
    if settings.llm_server_model is None or settings.llm_server_port is None:
        raise UsageError("the llm_server service needs EVENTPIPE_LLM_SERVER_MODEL and "
                         "EVENTPIPE_LLM_SERVER_PORT (the stack sets both)")
    stop = install_stop_handlers()
    command = server_command(server_binary(settings), check_model(settings.llm_server_model),
                             settings.llm_server_port, settings.llm_server_threads)
    # Its output goes to this service's log; it dies with this process.
    server = subprocess.Popen(command, preexec_fn=die_with_parent)
    ready = ready_file(settings.data_dir, "llm_server")
    try:
        wait_healthy(settings.llm_server_port, server, LOAD_TIMEOUT_S)
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
        READINESS.set(None)
        log.info("llama-server ready", extra={"port": settings.llm_server_port,
                                              "model": str(settings.llm_server_model)})
        while not stop.wait(0.5):
            if (code := server.poll()) is not None:
                raise StackError(f"llama-server exited with code {code}")
            HEARTBEAT.beat()
    finally:
        ready.unlink(missing_ok=True)
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


main = main_for("llm_server", run)
