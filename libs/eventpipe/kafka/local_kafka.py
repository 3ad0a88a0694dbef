"""A local Apache Kafka: one KRaft node (broker and controller) run from the jars `make kafka`
puts in `.kafka/libs`, as `java ... kafka.Kafka <config>`. Unlike the embedded broker its log
directory is on disk under the data directory, so a restart after `down`, a crash or a
SIGKILL finds every topic, record and committed offset where it was."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from eventpipe.kafka.broker import free_port, port_open
from eventpipe.kafka.broker_process import BrokerProcess
from eventpipe.kafka.errors import BrokerConfigError, BrokerStartError
from eventpipe.processes import die_with_parent

KAFKA_MAIN = "kafka.Kafka"  # also how `ps` and pid checks recognise the process

# The broker's own log: warnings, plus start/stop and the log cleaner (compaction) at INFO.
LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = info
"""


def find_kafka_libs(configured: Path | None = None) -> Path:
    """The folder of Kafka jars: the configured one, else `.kafka/libs` in the current folder
    or in the source checkout this package runs from (an editable install)."""
    candidates = [configured] if configured is not None else [
        Path.cwd() / ".kafka" / "libs",
        Path(__file__).resolve().parents[3] / ".kafka" / "libs",
    ]
    for path in candidates:
        if path is not None and any(path.glob("kafka_2.13-*.jar")):
            return path
    where = " or ".join(str(p) for p in candidates)
    raise BrokerConfigError(f"Apache Kafka is not installed ({where} has no kafka_2.13 jar): "
                            "run `make kafka`, or set EVENTPIPE_KAFKA_LIBS")


def find_java(configured: str = "java") -> str:
    java = shutil.which(configured)
    if java is None:
        raise BrokerConfigError(f"Java not found ({configured!r} is not on PATH): install "
                                "OpenJDK 17 or newer, or set EVENTPIPE_JAVA")
    return java


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def read_properties(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _port_of(listener: str) -> int:
    return int(listener.rsplit(":", 1)[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class LocalKafka(BrokerProcess):
    """One KRaft node under `home` (config in it, log directory `home/data`); its output goes
    to `log_path`. Ports are kept in the config, so the next start reuses them.

    `extra_config` is merged over the generated server properties (listeners, SASL, an
    authorizer); `client_config` is what the readiness check then connects with.

    Alone it is its own quorum. Several on loopback make a cluster (tests): give each its
    `node_id`, the same `voters` ({node id: controller port}) and the same `cluster_id`."""

    name = "Apache Kafka"
    stop_timeout_s = 60.0  # a controlled shutdown closes the logs cleanly

    def __init__(
        self,
        home: Path,
        port: int = 0,
        libs: Path | None = None,
        java: str = "java",
        heap_mb: int = 768,
        log_path: Path | None = None,
        tie_to_parent: bool = True,
        min_insync_replicas: int = 1,
        extra_config: dict[str, str] | None = None,
        node_id: int = 1,
        voters: dict[int, int] | None = None,
        cluster_id: str | None = None,
        controller_port: int = 0,
        client_config: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.home = home
        self.log_dir = home / "data"
        self.config_path = home / "server.properties"
        self.log_path = log_path or home / "broker.log"
        self.java = java
        self.libs = libs
        self.heap_mb = heap_mb
        self.tie_to_parent = tie_to_parent
        self.min_insync_replicas = min_insync_replicas
        self.extra_config = extra_config or {}
        # What the readiness check connects with: SASL credentials where `extra_config` puts
        # the client listener behind authentication.
        self.client_config = client_config or {}
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.port, self.controller_port = self._ports(port, controller_port)
        self.voters = voters or {node_id: self.controller_port}
        self._admin: AdminClient | None = None  # asks whether it serves, once its port opens

    def _ports(self, port: int, controller_port: int) -> tuple[int, int]:
        """A restart keeps the ports of the last start, so clients and the recorded stack
        find the broker where it was; a given port wins for the client listener."""
        stored: dict[str, str] = {}
        if self.config_path.is_file():
            stored = read_properties(self.config_path)
        try:
            listeners = dict(item.split("://", 1) for item in stored["listeners"].split(","))
            old_port, old_cport = _port_of(listeners["PLAINTEXT"]), _port_of(
                listeners["CONTROLLER"])
        except (KeyError, ValueError, IndexError):
            old_port = old_cport = 0
        client = port or old_port or free_port()
        controller = controller_port or old_cport or free_port()
        while controller == client:
            controller = free_port()
        return client, controller

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> dict[str, str]:
        conf = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(
                f"{node}@127.0.0.1:{port}" for node, port in sorted(self.voters.items())),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dir),
            # eventpipe creates every topic with its partitions and configs; a typo must fail,
            # not make a topic with broker defaults.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": str(len(self.voters)),
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": str(len(self.voters)),
            "transaction.state.log.min.isr": str(self.min_insync_replicas),
            "transaction.state.log.num.partitions": "5",
            "min.insync.replicas": str(self.min_insync_replicas),
            "group.initial.rebalance.delay.ms": "0",
        }
        return conf | self.extra_config

    def _check_log_dir(self) -> bool:
        """True when the log directory is formatted; refuses one that is not empty and has no
        readable identity (it is never deleted or reformatted)."""
        meta = self.log_dir / "meta.properties"
        if not self.log_dir.exists() or not any(self.log_dir.iterdir()):
            return False
        try:
            props = read_properties(meta)
            ok = bool(props.get("cluster.id")) and props.get("node.id") == str(self.node_id)
        except OSError:
            ok = False
        if not ok:
            raise BrokerConfigError(
                f"the Kafka log directory {self.log_dir} is corrupt or not this broker's "
                f"({meta.name} missing or unreadable); nothing was deleted: repair or move it")
        return True

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in self.config().items())
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text("# written by eventpipe at each start; edits are lost\n" + text)
        tmp.replace(self.config_path)
        (self.home / "log4j2.properties").write_text(LOG4J2)

    def _java_command(self, java: str, libs: Path, main: str, *args: str) -> list[str]:
        return [
            java, f"-Xmx{self.heap_mb}m", "-Xms128m", "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp", f"{libs}/*", main, *args,
        ]

    def start(self, timeout_s: float = 180.0) -> None:
        java = find_java(self.java)
        libs = find_kafka_libs(self.libs)
        formatted = self._check_log_dir()
        for name, port in (("client", self.port), ("controller", self.controller_port)):
            if not _bindable(port) or port_open(port):
                raise BrokerConfigError(f"port {port} (Kafka {name} listener) is already in use")
        self._write_config()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not formatted:
            self._format(java, libs)
        with self.log_path.open("ab") as out:
            start_at = out.tell()
            self.process = subprocess.Popen(
                self._java_command(java, libs, KAFKA_MAIN, str(self.config_path)),
                stdout=out, stderr=subprocess.STDOUT, cwd=self.home,
                start_new_session=True,
                preexec_fn=die_with_parent if self.tie_to_parent else None,
            )
        self._wait_ready(self._serving, timeout_s, 0.2,
                         lambda code: self._exited(code, start_at), f"; see {self.log_path}")

    def _format(self, java: str, libs: Path) -> None:
        # `--cluster-id=ID` in one argument: an id may start with "-".
        result = subprocess.run(
            self._java_command(java, libs, "kafka.tools.StorageTool", "format",
                               f"--cluster-id={self.cluster_id or new_cluster_id()}",
                               "--config", str(self.config_path)),
            capture_output=True, text=True, check=False, timeout=300,
        )
        with self.log_path.open("a") as out:
            out.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise BrokerStartError(f"formatting {self.log_dir} failed: "
                                   f"{_first_error(result.stdout + result.stderr)}")

    def _serving(self) -> bool:
        """Whether the broker lists itself in a metadata answer: its port opens before it has
        joined its own quorum."""
        if not port_open(self.port):
            return False
        if self._admin is None:
            conf: dict[str, str | int | float | bool] = {"bootstrap.servers": self.bootstrap}
            conf.update(self.client_config)
            self._admin = AdminClient(conf)
        with contextlib.suppress(KafkaException):  # not answering yet
            return bool(self._admin.list_topics(timeout=2).brokers)
        return False

    def _exited(self, code: int, log_offset: int) -> BrokerConfigError:
        return BrokerConfigError(f"Apache Kafka exited with code {code} while starting: "
                                 f"{_first_error(_read_from(self.log_path, log_offset))} "
                                 f"(see {self.log_path})")


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _first_error(text: str) -> str:
    """The line that says why: the first ERROR or exception line, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if " ERROR " in line or "Exception" in line or line.startswith("Error"):
            return line[:400]
    return lines[-1][:400] if lines else "no output"

