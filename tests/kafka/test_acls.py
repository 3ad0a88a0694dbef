"""Kafka ACLs on a real Apache Kafka (docs/hostile-input.md, "Kafka ACLs"): a KRaft node with
SASL/PLAIN and the StandardAuthorizer, the ACLs the docs recommend created as the super user,
the stack running as the services' principal, and an outside producer allowed to write only
the submissions topic. Its batch completes exactly once; its writes to the internal topics and
its read of the docs topic are refused, and none of them reaches the job."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from eventpipe.control.messages import encode_control
from eventpipe.errors import KafkaSetupError
from eventpipe.jobs import submit
from eventpipe.kafka.broker import free_port
from eventpipe.kafka.clients import make_admin, make_consumer, make_producer
from eventpipe.kafka.local_kafka import LocalKafka
from eventpipe.kafka.topics import Topics
from eventpipe.models import ControlCommand, DocumentMessage, job_id_for
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, kafka_libs_or_skip, read_results, wait_checkpoint, write_jsonl

pytestmark = [pytest.mark.kafka_only, pytest.mark.timeout(1200)]

PASSWORDS = {"admin": "admin-secret", "eventpipe": "eventpipe-secret",
             "producer": "producer-secret", "outsider": "outsider-secret"}
PREFIX = f"acl{uuid.uuid4().hex[:8]}"


def sasl_settings(bootstrap: str, user: str, data_dir: Path) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap, broker="kafka", topic_prefix=PREFIX, data_dir=data_dir,
        session_timeout_ms=6000, heartbeat_interval_ms=2000, checkpoint_flush_interval_s=0.2,
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username=user,
        sasl_password=PASSWORDS[user],
    )


def secured_config(port: int, controller_port: int) -> dict[str, str]:
    """SASL/PLAIN on both listeners (the controller and the broker talk to each other as
    admin), the KRaft authorizer, and nothing allowed that no ACL allows."""
    users = " ".join(f'user_{name}="{pw}"' for name, pw in PASSWORDS.items())
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="admin" password="{PASSWORDS["admin"]}" {users};')
    return {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,"
                                          "CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "allow.everyone.if.no.acl.found": "false",
    }


def recommended_acls(prefix: str) -> list[AclBinding]:
    """What docs/hostile-input.md recommends: the services' principal owns every topic and
    consumer group under the prefix; the outside producer writes the submissions topic only."""
    def acl(principal: str, rtype: ResourceType, name: str, pattern: ResourcePatternType,
            op: AclOperation) -> AclBinding:
        return AclBinding(rtype, name, pattern, f"User:{principal}", "*", op,
                          AclPermissionType.ALLOW)

    prefixed, literal = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    topic_ops = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE,
                 AclOperation.CREATE, AclOperation.DESCRIBE_CONFIGS)
    return [
        *(acl("eventpipe", ResourceType.TOPIC, f"{prefix}.", prefixed, op) for op in topic_ops),
        *(acl("eventpipe", ResourceType.GROUP, f"{prefix}-", prefixed, op)
          for op in (AclOperation.READ, AclOperation.DESCRIBE)),
        # The whole-topic readers' group id: librdkafka looks up its coordinator even though
        # they only assign() and never join or commit.
        *(acl("eventpipe", ResourceType.GROUP, "eventpipe-reader-unused", literal, op)
          for op in (AclOperation.READ, AclOperation.DESCRIBE)),
        acl("eventpipe", ResourceType.BROKER, "kafka-cluster", literal,
            AclOperation.IDEMPOTENT_WRITE),
        *(acl("producer", ResourceType.TOPIC, f"{prefix}.submissions", literal, op)
          for op in (AclOperation.WRITE, AclOperation.DESCRIBE)),
    ]


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    libs = kafka_libs_or_skip()
    home = tmp_path_factory.mktemp("kafka-acl")
    port, controller_port = free_port(), free_port()
    admin_client = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                    "sasl.username": "admin", "sasl.password": PASSWORDS["admin"]}
    with LocalKafka(home, port=port, controller_port=controller_port, libs=libs,
                    extra_config=secured_config(port, controller_port),
                    client_config=admin_client) as kafka:
        yield kafka


def refused_write(settings: Settings, topic: str, key: bytes, value: bytes) -> KafkaError:
    """Produces one record and returns the delivery error (None would mean it was written)."""
    errors: list[KafkaError | None] = []
    producer = make_producer(settings)
    producer.produce(topic, value, key, on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(60)
    assert len(errors) == 1, f"no delivery report for {topic}"
    err = errors[0]
    assert err is not None, f"User:producer wrote to {topic}"
    return err


def test_acls_keep_an_outside_producer_to_the_submissions_topic(
    secured_kafka: LocalKafka, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    admin = make_admin(sasl_settings(secured_kafka.bootstrap, "admin", data_dir))
    for binding, future in admin.create_acls(recommended_acls(PREFIX)).items():
        assert future.result() is None, binding

    services = sasl_settings(secured_kafka.bootstrap, "eventpipe", data_dir)
    producer = sasl_settings(secured_kafka.bootstrap, "producer", data_dir)
    topics = Topics.from_settings(services)
    # The services a batch needs to reach COMPLETED (the linker does its batch-level work);
    # spaCy loading on a loaded machine can take minutes.
    stack = Stack(services, services=("checkpoint", "linker", "sink", "llm", "dp", "ner",
                                      "ingest"))
    stack.start(ready_timeout_s=480)  # creates the topics as User:eventpipe
    try:
        batch_id = "acl_batch"
        job_id = job_id_for(batch_id)
        lines = corpus_lines(4, seed=19)
        submit(producer, write_jsonl(tmp_path / "in.jsonl", lines), batch_id)

        forged = DocumentMessage(job_id=job_id, batch_id=batch_id, doc_id="forged_doc",
                                 text="Forged text.").model_dump_json().encode()
        attempts = {
            topics.control: encode_control(ControlCommand.STOP, job_id),
            topics.docs: forged,
            topics.checkpoints: b'{"forged": true}',
        }
        # A user with no ACL at all: `submit` says the broker refused, it does not claim success.
        outsider = sasl_settings(secured_kafka.bootstrap, "outsider", data_dir)
        with pytest.raises(KafkaSetupError, match="refused the message") as no_acl:
            submit(outsider, write_jsonl(tmp_path / "out.jsonl", lines), "acl_outsider")
        assert "authorization" in str(no_acl.value).lower()
        for topic, value in attempts.items():
            err = refused_write(producer, topic, job_id.encode(), value)
            assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, err)

        # A group the outside producer may use (granted here only), so that what refuses the
        # read is the docs topic's ACL: without one librdkafka stops at the group coordinator
        # (GROUP_AUTHORIZATION_FAILED) and never fetches.
        probe_group = f"{PREFIX}_outside"
        grant = AclBinding(ResourceType.GROUP, probe_group, ResourcePatternType.LITERAL,
                           "User:producer", "*", AclOperation.READ, AclPermissionType.ALLOW)
        admin.create_acls([grant])[grant].result()
        codes: list[int] = []
        reader = make_consumer(producer, probe_group,
                               error_cb=lambda err: codes.append(err.code()))
        try:
            reader.subscribe([topics.docs])
            deadline = time.monotonic() + 60
            while KafkaError.TOPIC_AUTHORIZATION_FAILED not in codes:
                assert time.monotonic() < deadline, f"docs topic read not refused: {codes}"
                msg = reader.poll(1)
                if msg is not None:
                    assert msg.error() is not None, "User:producer read the docs topic"
                    codes.append(msg.error().code())
        finally:
            reader.close()

        cp = wait_checkpoint(services, job_id, lambda c: c["status"] == "COMPLETED",
                             stack=stack)
        counts = (cp["total_documents"], cp["processed_documents"], cp["failed_documents"])
        assert counts == (4, 4, 0)
        ids = sorted(r["id"] for r in read_results(results_path(data_dir, batch_id)))
        assert ids == sorted(str(json.loads(line)["id"]) for line in lines)
    finally:
        stack.stop()
