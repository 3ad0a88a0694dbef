"""The embedded stack: the broker (unless a cluster is configured) and every service as its
own process on this machine, supervised: a service that dies is started again."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eventpipe.checkpoint.restore import restore_from_files
from eventpipe.kafka.broker import EmbeddedBroker
from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.kafka.topics import ensure_topics
from eventpipe.processes import die_with_parent
from eventpipe.settings import Settings

log = logging.getLogger(__name__)

SERVICES = ("checkpoint", "sink", "llm", "dp", "ner", "ingest")
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class StackError(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    name: str  # instance name: the service, or `<service>.<n>` for its n-th extra worker
    service: str
    process: subprocess.Popen[bytes]
    log_path: Path
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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
        self.broker: EmbeddedBroker | None = None
        self.procs: dict[str, ServiceProcess] = {}
        self.log_dir = data_dir / "logs"
        self.run_dir = data_dir / "run"

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap
        return self.settings.kafka_bootstrap

    def start(self, ready_timeout_s: float = 180.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob("*.ready"):
            stale.unlink()
        if not self.settings.kafka_bootstrap:
            self.broker = EmbeddedBroker(
                self.settings.broker_port, self.settings.broker_binary,
                log_path=self.log_dir / "broker.log",
            )
            self.broker.start()
            # Short group timeouts suit the embedded broker only; real Kafka needs >= 6000 ms.
            self.settings = self.settings.model_copy(update={
                "kafka_bootstrap": self.broker.bootstrap,
                "session_timeout_ms": self.settings.embedded_session_timeout_ms,
                "heartbeat_interval_ms": self.settings.embedded_heartbeat_interval_ms,
            })
        ensure_topics(make_admin(self.settings), self.settings)
        restore_from_files(self.settings, make_producer(self.settings))
        for service in self.service_names:
            for n in range(1, self.workers(service) + 1):
                self.spawn(service if n == 1 else f"{service}.{n}")
        self.wait_ready(ready_timeout_s)

    def service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # One BLAS thread per process: the stages already run in parallel processes, and
        # measured here spaCy ran 10-40% faster single-threaded than with a thread per core.
        for var in BLAS_THREAD_VARS:
            env.setdefault(var, "1")
        s = self.settings
        env.update({
            "EVENTPIPE_KAFKA_BOOTSTRAP": self.bootstrap,
            "EVENTPIPE_DATA_DIR": str(s.data_dir),
            "EVENTPIPE_SESSION_TIMEOUT_MS": str(s.session_timeout_ms),
            "EVENTPIPE_HEARTBEAT_INTERVAL_MS": str(s.heartbeat_interval_ms),
            "EVENTPIPE_TOPIC_PREFIX": s.topic_prefix,
        })
        return env

    def workers(self, service: str) -> int:
        """Processes per stage; the others (ingest, sink, materializer) own files: one."""
        return {"ner": self.settings.ner_workers, "dp": self.settings.dp_workers,
                "llm": self.settings.llm_workers}.get(service, 1)

    def spawn(self, name: str) -> ServiceProcess:
        service = name.split(".")[0]
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                stdout=out, stderr=subprocess.STDOUT, env=self.service_env(),
                start_new_session=True,
                preexec_fn=die_with_parent if self.tie_to_parent else None,
            )
        previous = self.procs.get(name)
        proc = ServiceProcess(name, service, process, log_path,
                              restarts=previous.restarts + 1 if previous else 0)
        self.procs[name] = proc
        return proc

    def ready_path(self, proc: ServiceProcess) -> Path:
        return self.run_dir / f"{proc.service}-{proc.process.pid}.ready"

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(self.procs)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if self.ready_path(proc).exists():
                    pending.discard(name)
                elif proc.process.poll() is not None:
                    raise StackError(
                        f"service {name} exited with code {proc.process.returncode} while "
                        f"starting; last lines of {proc.log_path}:\n{_tail(proc.log_path)}"
                    )
            if time.monotonic() > deadline:
                raise StackError(f"services not ready after {timeout_s} s: {sorted(pending)}")
            time.sleep(0.1)

    def supervise(self) -> list[str]:
        """Start again every service that died; returns their names."""
        restarted = []
        for name, proc in list(self.procs.items()):
            code = proc.process.poll()
            if code is not None:
                log.warning("service died; starting it again",
                            extra={"service": name, "code": code})
                self.spawn(name)
                restarted.append(name)
        return restarted

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every service (each finishes its current batch), then the broker."""
        for proc in self.procs.values():
            if proc.process.poll() is None:
                proc.process.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()
        self.procs.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
