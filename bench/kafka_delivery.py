"""Delivery on Apache Kafka, measured on a local KRaft broker (`make kafka`) started here.

(1) One consume-process-produce hop, two ways, on the same broker and records:
    at-least-once   consume a batch, produce, flush (idempotent producer, acks=all), commit
                    offsets: a crash between flush and commit redelivers the batch, which
                    eventpipe's keyed, idempotent saves absorb;
    transactional   consume a batch, produce and `send_offsets_to_transaction` in one
                    transaction; the next hop reads with isolation.level=read_committed.
    Throughput: a backlog of N records through the hop. Latency per hop: a paced stream
    (records stamped when produced), the time until a downstream reader (read_committed for
    the transactional hop) sees each record; median and p99.
(2) Consumer-group recovery after SIGKILL of one of two consumers, classic protocol against
    KIP-848 (`group.protocol=consumer`), both with a 6 s session: the time from the kill until
    the survivor receives a record from a partition the killed one owned.

    .venv/bin/python bench/kafka_delivery.py [--records 20000] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from eventpipe.kafka.local_kafka import LocalKafka

PAYLOAD = b"x" * 1024
SESSION_MS = 6000

# Make both protocols' sessions 6 s: KIP-848's session is the broker's setting (45 s and a
# 45 s minimum by default), the classic one the client's (the broker's minimum is 6 s).
BROKER_CONFIG = {
    "group.consumer.min.session.timeout.ms": str(SESSION_MS),
    "group.consumer.session.timeout.ms": str(SESSION_MS),
    "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "2000",
}


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result()
    deadline = time.monotonic() + 60
    while True:  # partitions have leaders a moment after the topic is listed
        meta = admin.list_topics(timeout=10).topics
        if all(n in meta and all(p.leader >= 0 for p in meta[n].partitions.values())
               for n in names):
            return
        if time.monotonic() > deadline:
            raise SystemExit("topics without leaders after 60 s")
        time.sleep(0.2)


def producer(bootstrap: str, **extra: Any) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                     "acks": "all", "linger.ms": 5, **extra})


def consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 2000,
                     "fetch.wait.max.ms": 100, **extra})


class Hop:
    """One stage between two topics, at-least-once or transactional, in a thread."""

    def __init__(self, bootstrap: str, source: str, target: str, transactional: bool,
                 batch: int) -> None:
        self.source, self.target, self.batch = source, target, batch
        self.transactional = transactional
        group = f"hop-{uuid.uuid4().hex[:8]}"
        self.consumer = consumer(bootstrap, group, **(
            {"isolation.level": "read_committed"} if transactional else {}))
        self.producer = producer(bootstrap, **(
            {"transactional.id": f"tx-{group}"} if transactional else {}))
        self.done = 0
        self.stop = threading.Event()
        if transactional:
            self.producer.init_transactions(30)
        self.consumer.subscribe([source])
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            msgs = [m for m in self.consumer.consume(self.batch, 0.1) if m.error() is None]
            if not msgs:
                continue
            if self.transactional:
                self.producer.begin_transaction()
            for m in msgs:
                self.producer.produce(self.target, key=m.key(), value=m.value())
                self.producer.poll(0)
            if self.transactional:
                positions = self.consumer.position(self.consumer.assignment())
                self.producer.send_offsets_to_transaction(
                    positions, self.consumer.consumer_group_metadata(), 30)
                self.producer.commit_transaction(30)
            else:
                if self.producer.flush(30):
                    raise KafkaException("records not acknowledged")
                self.consumer.commit(asynchronous=False)
            self.done += len(msgs)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.consumer.close()


def fill(bootstrap: str, topic: str, n: int) -> None:
    p = producer(bootstrap)
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=PAYLOAD)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)


def throughput(bootstrap: str, transactional: bool, n: int, batch: int) -> float:
    src, dst = f"in-{uuid.uuid4().hex[:6]}", f"out-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [src, dst], 3)
    fill(bootstrap, src, n)
    hop = Hop(bootstrap, src, dst, transactional, batch)
    started = time.perf_counter()
    hop.thread.start()
    while hop.done < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    hop.close()
    return n / elapsed


def latency(bootstrap: str, transactional: bool, rate: int, seconds: float,
            batch: int) -> list[float]:
    """Milliseconds from produce to the downstream reader, per record."""
    src, dst = f"lin-{uuid.uuid4().hex[:6]}", f"lout-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [src, dst], 3)
    hop = Hop(bootstrap, src, dst, transactional, batch)
    hop.thread.start()
    reader = consumer(bootstrap, f"reader-{uuid.uuid4().hex[:6]}", **(
        {"isolation.level": "read_committed"} if transactional else {}))
    reader.subscribe([dst])
    seen: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for m in reader.consume(100, 0.1):
                if m.error() is None:
                    seen.append((time.time() - json.loads(m.value() or b"{}")["t"]) * 1000)

    reader_thread = threading.Thread(target=read, daemon=True)
    reader_thread.start()
    time.sleep(8)  # both groups joined before the stream starts
    p = producer(bootstrap, **{"linger.ms": 0})
    total = int(rate * seconds)
    for i in range(total):
        p.produce(src, key=str(i).encode(), value=json.dumps({"t": time.time()}).encode())
        p.poll(0)
        time.sleep(1 / rate)
    p.flush(30)
    deadline = time.monotonic() + 60
    while len(seen) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    reader_thread.join()
    reader.close()
    hop.close()
    return seen


GROUP_MEMBER = """
import sys, time
from confluent_kafka import Consumer
bootstrap, topic, group, protocol, out, session_ms = sys.argv[1:7]
conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": True,
        "auto.offset.reset": "latest", "fetch.wait.max.ms": 100}
if protocol == "consumer":
    conf["group.protocol"] = "consumer"
else:
    conf.update({"session.timeout.ms": int(session_ms), "heartbeat.interval.ms": 2000,
                 "partition.assignment.strategy": "range"})
c = Consumer(conf)
c.subscribe([topic])
with open(out, "a", buffering=1) as f:
    while True:
        m = c.poll(0.1)
        if m is not None and m.error() is None:
            f.write(f"{time.time()} {m.partition()}\\n")
"""


def recovery(bootstrap: str, protocol: str, workdir: Path) -> float:
    """Seconds from SIGKILL of one member until the survivor gets a record from a partition
    the killed member owned."""
    topic, group = f"grp-{uuid.uuid4().hex[:6]}", f"g-{protocol}-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [topic], 6)
    stop = threading.Event()

    def produce() -> None:
        p = producer(bootstrap, **{"linger.ms": 0})
        while not stop.is_set():
            for part in range(6):
                p.produce(topic, value=b"r", partition=part)
            p.poll(0)
            time.sleep(0.02)
        p.flush(10)

    outs = [workdir / f"{protocol}-{n}.txt" for n in (1, 2)]
    members = [subprocess.Popen([sys.executable, "-c", GROUP_MEMBER, bootstrap, topic, group,
                                 protocol, str(out), str(SESSION_MS)]) for out in outs]
    threading.Thread(target=produce, daemon=True).start()
    try:
        def partitions(out: Path, since: float = 0.0) -> set[int]:
            if not out.exists():
                return set()
            rows = [line.split() for line in out.read_text().splitlines() if line]
            return {int(p) for t, p in rows if float(t) >= since}

        # The victim's partitions: those it received from once both members had records
        # (no rebalance happens between then and the kill).
        deadline = time.monotonic() + 120
        while not (partitions(outs[0]) and partitions(outs[1])):
            if time.monotonic() > deadline:
                raise SystemExit(f"{protocol}: the two members never both received records")
            time.sleep(0.2)
        both_since = time.time()
        time.sleep(3)
        while not (victim_parts := partitions(outs[1], both_since)):
            if time.monotonic() > deadline:
                raise SystemExit(f"{protocol}: the victim stopped receiving records")
            time.sleep(0.2)
        killed_at = time.time()
        os.kill(members[1].pid, signal.SIGKILL)
        members[1].wait()
        deadline = time.monotonic() + 120
        while not (partitions(outs[0], killed_at) & victim_parts):
            if time.monotonic() > deadline:
                raise SystemExit(f"{protocol}: the survivor never took over")
            time.sleep(0.05)
        rows = [line.split() for line in outs[0].read_text().splitlines() if line]
        first = min(float(t) for t, p in rows
                    if float(t) >= killed_at and int(p) in victim_parts)
        return first - killed_at
    finally:
        stop.set()
        for m in members:
            if m.poll() is None:
                m.kill()
                m.wait()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rate", type=int, default=200, help="records/s of the latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="recovery runs per protocol")
    parser.add_argument("--recovery-only", action="store_true", help="skip the hop runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventpipe-kafka-bench-") as tmp, LocalKafka(
            Path(tmp) / "kafka", extra_config=BROKER_CONFIG) as kafka:
        b = kafka.bootstrap
        # Alternate the two modes so that machine noise hits both alike.
        alo: list[float] = []
        txn: list[float] = []
        for _ in range(0 if args.recovery_only else 2):
            alo.append(throughput(b, False, args.records, args.batch))
            txn.append(throughput(b, True, args.records, args.batch))
        if not args.recovery_only:
            hop_report(b, args, alo, txn)
        classic: list[float] = []
        kip848: list[float] = []
        for _ in range(args.rounds):
            classic.append(recovery(b, "classic", Path(tmp)))
            kip848.append(recovery(b, "consumer", Path(tmp)))
        print(f"group recovery after SIGKILL of 1 of 2 consumers (session {SESSION_MS} ms):")
        print(f"  classic                    median {statistics.median(classic):5.1f} s  "
              f"runs {[round(x, 1) for x in classic]}")
        print(f"  KIP-848 (protocol consumer) median {statistics.median(kip848):5.1f} s  "
              f"runs {[round(x, 1) for x in kip848]}")


def hop_report(b: str, args: argparse.Namespace, alo: list[float], txn: list[float]) -> None:
    """Latency runs, then the throughput and latency lines."""
    if alo:
        lat_alo = latency(b, False, args.rate, args.seconds, args.batch)
        lat_txn = latency(b, True, args.rate, args.seconds, args.batch)
        print(f"hop throughput, {args.records} x 1 KB, batch {args.batch} "
              f"(best of {len(alo)}):")
        print(f"  at-least-once  {max(alo):8.0f} rec/s   runs {[round(x) for x in alo]}")
        print(f"  transactional  {max(txn):8.0f} rec/s   runs {[round(x) for x in txn]}")
        print(f"  ratio transactional / at-least-once: {max(txn) / max(alo):.2f}")
        for name, lat in (("at-least-once", lat_alo), ("transactional", lat_txn)):
            print(f"  latency per hop {name:<14} median {statistics.median(lat):7.1f} ms  "
                  f"p99 {pct(lat, 0.99):7.1f} ms  ({len(lat)} records)")


if __name__ == "__main__":
    main()
