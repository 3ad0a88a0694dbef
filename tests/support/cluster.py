"""A three-node KRaft Apache Kafka cluster on loopback (each node broker and controller),
for tests/kafka/test_cluster.py and bench/cluster.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from eventpipe.kafka.broker import free_port
from eventpipe.kafka.local_kafka import LocalKafka, new_cluster_id

NODES = (1, 2, 3)


def _each_at_once(nodes: Iterable[LocalKafka], call: Callable[[LocalKafka], None]) -> None:
    threads = [threading.Thread(target=call, args=(node,)) for node in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def start_cluster(home: Path) -> dict[int, LocalKafka]:
    """Three nodes, min.insync.replicas 2. Each is ready only once the quorum stands, so
    they start together; if one does not, the others are stopped and RuntimeError says why."""
    voters = {n: free_port() for n in NODES}
    cluster_id = new_cluster_id()
    nodes = {n: LocalKafka(home / f"node{n}", node_id=n, voters=voters,
                           controller_port=voters[n], cluster_id=cluster_id, heap_mb=384,
                           min_insync_replicas=2, log_path=home / f"node{n}.log",
                           # PDEATHSIG follows the starting *thread*, which ends at once;
                           # the caller stops the nodes (stop_cluster) instead.
                           tie_to_parent=False)
             for n in NODES}
    errors: list[BaseException] = []

    def start(node: LocalKafka) -> None:
        try:
            node.start(timeout_s=300)
        except BaseException as exc:
            errors.append(exc)

    _each_at_once(nodes.values(), start)
    if errors:
        stop_cluster(nodes)
        raise RuntimeError(f"the cluster did not start: {errors}")
    return nodes


def stop_cluster(nodes: dict[int, LocalKafka]) -> None:
    """All nodes at once: stopped one by one, the last waits for a quorum that is gone and
    is killed only after its stop timeout (60 s)."""
    _each_at_once(nodes.values(), LocalKafka.stop)
