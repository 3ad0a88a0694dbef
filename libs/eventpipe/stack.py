"""The local stack: the broker (unless a cluster is configured) and every service as its own
process on this machine. `eventpipe run` holds one for the length of a job and supervises it;
`eventpipe up` leaves one running in the background and records it in `run/stack.json` under
the data directory, where `ps`, `down` and every other command find it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import SecretStr

from eventpipe.api.tokens import token_source
from eventpipe.checkpoint.restore import restore_from_files
from eventpipe.errors import StackError as StackError
from eventpipe.kafka.broker import EmbeddedBroker, free_port
from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.kafka.local_kafka import KAFKA_MAIN, LocalKafka
from eventpipe.kafka.topics import ensure_topics
from eventpipe.nlp.llm import server as llm_server
from eventpipe.processes import die_with_parent, pid_alive, start_ticks, wait_gone
from eventpipe.settings import TEST_HOOKS_ENV, Settings

log = logging.getLogger(__name__)

# What a local broker's process is recognised by (a reused pid is not taken for it).
BROKER_CMDLINE = {"embedded": "tansu", "kafka": KAFKA_MAIN}
# Real Kafka refuses a session timeout below its group.min.session.timeout.ms (6000 ms).
KAFKA_MIN_SESSION_TIMEOUT_MS = 6000

SERVICES = ("checkpoint", "linker", "sink", "llm", "dp", "ner", "ingest", "console")
# (plus `llm_server`, first, when EVENTPIPE_LLM_SERVER_MODEL names a GGUF file; with
# EVENTPIPE_CHAINED_WORKERS, `chain` in place of the stages it runs)
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class ServiceProcess:
    name: str  # instance name: the service, or `<service>.<n>` for its n-th extra worker
    service: str
    pid: int
    log_path: str
    restarts: int = 0
    health_port: int | None = None
    started: int | None = None  # start time (processes.start_ticks): pid reuse is not ours

    @property
    def cmdline_mark(self) -> str:
        return f"services.{self.service}"

    def alive(self) -> bool:
        return pid_alive(self.pid, self.cmdline_mark, self.started)


@dataclass
class StackState:
    """What `run/stack.json` records of a stack started by `eventpipe up`."""

    bootstrap: str
    broker_kind: str  # "embedded" or "kafka" (a local broker this stack started), or "cluster"
    broker_pid: int | None
    session_timeout_ms: int
    heartbeat_interval_ms: int
    services: dict[str, ServiceProcess]
    console_port: int | None = None
    console_token: str | None = None  # where the API token is, never the token
    broker_started: int | None = None

    @property
    def console_url(self) -> str | None:
        return f"http://127.0.0.1:{self.console_port}" if self.console_port else None

    @classmethod
    def load(cls, path: Path) -> StackState | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StackError(f"cannot read {path}: {exc}") from exc
        data["services"] = {k: ServiceProcess(**v) for k, v in data["services"].items()}
        if "embedded" in data:  # written before there were two local brokers
            data["broker_kind"] = "embedded" if data.pop("embedded") else "cluster"
        return cls(**data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL) as f:
            f.write(json.dumps(asdict(self), indent=2).encode())
        tmp.replace(path)

    @property
    def local_broker(self) -> bool:
        return self.broker_kind in BROKER_CMDLINE

    def broker_alive(self) -> bool:
        return not self.local_broker or (
            self.broker_pid is not None
            and pid_alive(self.broker_pid, BROKER_CMDLINE[self.broker_kind],
                          self.broker_started))


def open_private(path: Path, flags: int) -> BinaryIO:
    """A file only the stack's user can read (0600), whatever the umask."""
    return os.fdopen(os.open(path, flags, 0o600), "wb")


# The secrets each service uses; a service is not given the others.
SECRETS_USED = {
    "sasl_password": {*SERVICES, "chain"},
    "postgres_dsn": {"sink", "linker"},
    "elasticsearch_password": {"sink", "linker"},
    "elasticsearch_api_key": {"sink", "linker"},
    "llm_api_key": {"llm"},
    "api_token": {"console"},
    "api_read_token": {"console"},
}


def settings_env(settings: Settings, service: str | None = None) -> dict[str, str]:
    """The settings object as the environment a service reads it back from; with a service
    named, without the secrets that service does not use."""
    env = {}
    for name, value in settings:
        if value is None:
            continue
        if service is not None and service not in SECRETS_USED.get(name, {service}):
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"EVENTPIPE_{name.upper()}"] = str(value)
    return env


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# The first NLP stage runs at a lower CPU priority than everything after it: on a machine
# with fewer cores than busy processes, the later stages take their share first, so less
# backlog builds up between NER and DP and DP runs alone for less time after NER's last
# batch (bench/pipeline.py on 2 cores, with the consume loop's slow start: ~2.9 s -> ~1.4 s).
# An idle core still runs NER at once.
NICENESS = {"ner": 10}


def _prepare_child(niceness: int, tie_to_parent: bool) -> Callable[[], None] | None:
    if not niceness and not tie_to_parent:
        return None

    def prepare() -> None:
        if niceness:
            os.nice(niceness)
        if tie_to_parent:
            die_with_parent()

    return prepare


class Stack:
    def __init__(
        self,
        settings: Settings,
        services: tuple[str, ...] = SERVICES,
        tie_to_parent: bool = True,
    ) -> None:
        self.tie_to_parent = tie_to_parent
        data_dir = settings.data_dir.resolve()
        self.settings = settings.model_copy(update={"data_dir": data_dir})
        self.service_names = services
        if settings.llm_server_model is not None and "llm" in services:
            # llama.cpp's server first, and the events stage pointed at it (see
            # services/llm_server): its port is chosen here, as the console's is.
            port = settings.llm_server_port or free_port()
            self.settings = self.settings.model_copy(update={
                "llm_server_port": port, "llm_backend": "openai",
                "llm_base_url": llm_server.base_url(port),
                "llm_model": llm_server.model_name(settings.llm_server_model)})
            self.service_names = ("llm_server", *services)
        if self.settings.chained_workers:
            chained = self.settings.chained_stages
            self.service_names = tuple(
                "chain" if name == "ner" else name for name in self.service_names
                if name not in chained or name == "ner")
        self.broker: EmbeddedBroker | LocalKafka | None = None
        self.broker_pid: int | None = None
        self.broker_kind: str = "cluster" if settings.kafka_bootstrap else settings.broker
        self.broker_started: int | None = None
        self.procs: dict[str, ServiceProcess] = {}
        self.console_port: int | None = None
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        self.log_dir = data_dir / "logs"
        self.run_dir = data_dir / "run"
        self.state_path = self.run_dir / "stack.json"

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap
        return self.settings.kafka_bootstrap

    # --- starting -----------------------------------------------------------------------

    def start(self, ready_timeout_s: float = 180.0) -> None:
        """Start everything and wait until ready; on any failure stop what was started."""
        try:
            self._start(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, ready_timeout_s: float) -> None:
        data_dir = self.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # Results, checkpoints, logs and the inbox are the stack user's alone.
        data_dir.chmod(0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob("*.ready"):
            stale.unlink()
        if not self.settings.kafka_bootstrap:
            self.start_broker(self.settings.broker_port)
        self.prepare_broker()
        for service in self.service_names:
            for n in range(1, self.workers(service) + 1):
                self.spawn(service if n == 1 else f"{service}.{n}")
        self.wait_ready(ready_timeout_s)

    @property
    def kafka_home(self) -> Path:
        """The local Apache Kafka's config and log directory: it lives with the data."""
        return self.settings.data_dir / "kafka"

    def start_broker(self, port: int) -> None:
        s = self.settings
        log_path = self.log_dir / "broker.log"
        if s.broker == "kafka":
            self.broker = LocalKafka(
                self.kafka_home, port, libs=s.kafka_libs, java=s.java, heap_mb=s.kafka_heap_mb,
                log_path=log_path, tie_to_parent=self.tie_to_parent,
            )
            timeouts = {"session_timeout_ms": max(s.session_timeout_ms,
                                                  KAFKA_MIN_SESSION_TIMEOUT_MS)}
        else:
            self.broker = EmbeddedBroker(port, s.broker_binary, log_path=log_path,
                                         tie_to_parent=self.tie_to_parent)
            # Short group timeouts suit the embedded broker only.
            timeouts = {"session_timeout_ms": s.embedded_session_timeout_ms,
                        "heartbeat_interval_ms": s.embedded_heartbeat_interval_ms}
        self.broker.start()
        self.broker_pid = self.broker.pid
        self.broker_started = start_ticks(self.broker_pid) if self.broker_pid else None
        self.broker_kind = s.broker
        self.settings = s.model_copy(update={"kafka_bootstrap": self.broker.bootstrap,
                                             **timeouts})

    def prepare_broker(self) -> None:
        """Topics first; then, on a broker without eventpipe's state, the state from the
        checkpoint files, before any service consumes."""
        ensure_topics(make_admin(self.settings), self.settings)
        restored = restore_from_files(self.settings, make_producer(self.settings))
        if restored:
            log.info("restored jobs from checkpoint files", extra={"jobs": restored})

    def workers(self, service: str) -> int:
        """Processes per stage; the others (ingest, sink, materializer) own files: one."""
        return {"ner": self.settings.ner_workers, "dp": self.settings.dp_workers,
                "llm": self.settings.llm_workers,
                "chain": self.settings.chained_workers}.get(service, 1)

    def service_env(self, service: str | None = None) -> dict[str, str]:
        # The settings object is the one source: inherited EVENTPIPE_* variables are replaced.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("EVENTPIPE_") or k == TEST_HOOKS_ENV}
        # One BLAS thread per process: the stages already run in parallel processes, and
        # measured here spaCy ran 10-40% faster single-threaded than with a thread per core.
        for var in BLAS_THREAD_VARS:
            env.setdefault(var, "1")
        env.update(settings_env(self.settings, service))
        return env

    def _health_port(self, name: str) -> int | None:
        """With EVENTPIPE_HEALTH_PORT set, each process gets its own port from there on."""
        base = self.settings.health_port
        if base is None:
            return None
        previous = self.procs.get(name)
        if previous is not None and previous.health_port is not None:
            return previous.health_port
        used = {p.health_port for p in self.procs.values()}
        port = base
        while port in used:
            port += 1
        return port

    def spawn(self, name: str) -> ServiceProcess:
        service = name.split(".")[0]
        log_path = self.log_dir / f"{name}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        health_port = self._health_port(name)
        env = self.service_env(service)
        if health_port is not None:
            env["EVENTPIPE_HEALTH_PORT"] = str(health_port)
        if service == "console":  # (its API tokens reach it alone: SECRETS_USED)
            # Chosen here, not by the console, so that `ps` can print the URL.
            if self.console_port is None:
                self.console_port = self.settings.console_port or free_port()
            env["EVENTPIPE_CONSOLE_PORT"] = str(self.console_port)
        with open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, umask=0o077,
                preexec_fn=_prepare_child(NICENESS.get(service, 0), self.tie_to_parent),
            )
        self._popens[process.pid] = process
        previous = self.procs.get(name)
        proc = ServiceProcess(name, service, process.pid, str(log_path),
                              restarts=previous.restarts + 1 if previous else 0,
                              health_port=health_port, started=start_ticks(process.pid))
        self.procs[name] = proc
        return proc

    def exit_code(self, proc: ServiceProcess) -> int | None:
        """The exit code of a dead service, or None while it runs (reaps our children)."""
        popen = self._popens.get(proc.pid)
        if popen is not None:
            return popen.poll()
        return None if proc.alive() else -1

    def ready_path(self, proc: ServiceProcess) -> Path:
        return self.run_dir / f"{proc.service}-{proc.pid}.ready"

    def wait_ready(self, timeout_s: float, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(names if names is not None else self.procs)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if self.ready_path(proc).exists():
                    pending.discard(name)
                elif (code := self.exit_code(proc)) is not None:
                    raise StackError(
                        f"service {name} exited with code {code} while starting; last lines "
                        f"of {proc.log_path}:\n{_tail(Path(proc.log_path))}"
                    )
            if time.monotonic() > deadline:
                raise StackError(f"services not ready after {timeout_s} s: {sorted(pending)}")
            time.sleep(0.1)

    def supervise(self) -> list[str]:
        """Start again every service that died; returns their names."""
        restarted = []
        for name, proc in list(self.procs.items()):
            code = self.exit_code(proc)
            if code is not None:
                log.warning("service died; starting it again",
                            extra={"service": name, "code": code})
                self.spawn(name)
                restarted.append(name)
        return restarted

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every service (each finishes its current batch), then the broker."""
        # Only processes that are the stack's own: its children, or (attached by `down` or
        # `up`) processes whose command line and start time are those recorded.
        stop_processes([Owned(p.pid, p.cmdline_mark, p.started) for p in self.procs.values()
                        if p.pid in self._popens or p.alive()], timeout_s, self._popens)
        self.procs.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        elif self.broker_pid is not None and self.broker_kind in BROKER_CMDLINE:
            broker = Owned(self.broker_pid, BROKER_CMDLINE[self.broker_kind],
                           self.broker_started)
            if broker.alive():
                stop_processes([broker], timeout_s)
        self.broker_pid = None
        self.broker_started = None

    # --- the background stack of `eventpipe up` -------------------------------------------

    def state(self) -> StackState:
        return StackState(
            bootstrap=self.bootstrap, broker_kind=self.broker_kind,
            broker_pid=self.broker_pid, session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms, services=self.procs,
            console_port=self.console_port,
            console_token=token_source(self.settings) if self.console_port else None,
            broker_started=self.broker_started,
        )

    @classmethod
    def attach(cls, settings: Settings, state: StackState) -> Stack:
        stack = cls(settings.model_copy(update={
            "kafka_bootstrap": state.bootstrap,
            "session_timeout_ms": state.session_timeout_ms,
            "heartbeat_interval_ms": state.heartbeat_interval_ms,
        }), tie_to_parent=False)
        if state.local_broker:  # start_broker() restarts the kind that was running
            stack.settings = stack.settings.model_copy(update={"broker": state.broker_kind})
        stack.broker_pid = state.broker_pid
        stack.broker_kind = state.broker_kind
        stack.broker_started = state.broker_started
        stack.procs = dict(state.services)
        stack.console_port = state.console_port
        return stack


@dataclass(frozen=True)
class Owned:
    """A process of the stack: its pid, a mark its command line holds, its start time."""

    pid: int
    cmdline_mark: str
    started: int | None

    def alive(self) -> bool:
        return pid_alive(self.pid, self.cmdline_mark, self.started)


def stop_processes(
    procs: list[Owned], timeout_s: float,
    popens: dict[int, subprocess.Popen[bytes]] | None = None,
) -> None:
    """SIGTERM, wait for each to exit, SIGKILL what is left; a process not our child is
    checked to be the one recorded before every signal."""
    for proc in procs:
        if proc.pid in (popens or {}) or proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        popen = (popens or {}).get(proc.pid)
        if popen is not None:
            try:
                popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        elif not wait_gone(proc.pid, max(0.1, deadline - time.monotonic())) and proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            wait_gone(proc.pid, 5.0)


def stack_status(state: StackState) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if state.local_broker:
        rows.append({"name": f"broker ({state.broker_kind})", "pid": state.broker_pid,
                     "status": "running" if state.broker_alive() else "dead",
                     "log": "logs/broker.log"})
    for name, proc in sorted(state.services.items()):
        rows.append({"name": name, "pid": proc.pid,
                     "status": "running" if proc.alive() else "dead", "log": proc.log_path,
                     "restarts": proc.restarts})
    return rows
