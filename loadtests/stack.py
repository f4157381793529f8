"""The bench's own Kafka + Mosquitto stacks and fresh topics (with their ACLs) for each measured run.

The bench runs on a secure stack ("bench": mutual TLS, deny-by-default ACLs), as the product does. A second,
plaintext stack ("bench-plain") exists only to measure the cost of security in the same run; nothing else
runs on it. Provisioning, the load generators and the observers act as the operator principal; the core's
stages and real agents as their own principals, with Kafka ACLs granted on each run's topic prefix.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from broker.infra import Infra, InfraConfig
from broker.infra.local import LocalDeployment
from broker.infra.process import is_running
from broker.keys_admin import publish_key_events
from broker.topics import Topic, TopicNames, create_topics
from consent_io import kafka
from consent_io.connection import KafkaConnection
from loadtests.agents import BENCH_NATIONAL_SECRET

__all__ = [
    "BenchStack",
    "RunTopics",
    "add_stack_arguments",
    "bench_infra_config",
    "deployment_from_args",
    "plaintext_infra_config",
]

log = logging.getLogger(__name__)

# The bench's own stacks, apart from the tests' ("test": 19092/11883) and the default (9092/1883), and below
# Linux's ephemeral port range (32768-60999, /proc/sys/net/ipv4/ip_local_port_range): a port in that range can
# be taken by an outgoing connection while a broker restarts, and the broker then cannot bind it (issue 13).
BENCH_KAFKA_PORT = 29792
BENCH_MQTT_PORT = 21783
PLAIN_KAFKA_PORT = 29892  # the plaintext comparison stack (security cost only)
PLAIN_MQTT_PORT = 21883


def bench_infra_config(kafka_port: int | None = None, mqtt_port: int | None = None) -> InfraConfig:
    """The bench's stack: ``bench`` on the default ports, else ``bench-<kafka port>`` (its own folders)."""
    kafka_port = kafka_port or BENCH_KAFKA_PORT
    mqtt_port = mqtt_port or BENCH_MQTT_PORT
    default = (kafka_port, mqtt_port) == (BENCH_KAFKA_PORT, BENCH_MQTT_PORT)
    return InfraConfig(name="bench" if default else f"bench-{kafka_port}", kafka_port=kafka_port, mqtt_port=mqtt_port)


def plaintext_infra_config() -> InfraConfig:
    """For the security-cost comparison only: no TLS, no authentication, no ACLs."""
    return InfraConfig(name="bench-plain", kafka_port=PLAIN_KAFKA_PORT, mqtt_port=PLAIN_MQTT_PORT, secure=False)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Which running local stack a stand-alone benchmark uses (``consent-broker infra``; default: the tests')."""
    parser.add_argument("--stack", default="test", help="the local stack's name (default: test)")
    parser.add_argument("--kafka-port", type=int, default=19092)
    parser.add_argument("--mqtt-port", type=int, default=11883)
    parser.add_argument("--insecure", action="store_true", help="the stack runs plaintext (debugging only)")


def deployment_from_args(args: argparse.Namespace) -> LocalDeployment:
    """Credentials per principal on the stack named by :func:`add_stack_arguments`' options."""
    secure = not args.insecure
    config = InfraConfig(name=args.stack, kafka_port=args.kafka_port, mqtt_port=args.mqtt_port, secure=secure)
    return LocalDeployment(Infra(config), national_secret=BENCH_NATIONAL_SECRET)


@dataclass
class BenchStack:
    infra: Infra
    started_here: bool = False

    @classmethod
    def up(cls, config: InfraConfig | None = None) -> BenchStack:
        infra = Infra(config or bench_infra_config())
        already = infra.status().healthy
        if not already:
            infra.up()
        return cls(infra, started_here=not already)

    @property
    def deployment(self) -> LocalDeployment:
        return LocalDeployment(self.infra, national_secret=BENCH_NATIONAL_SECRET)

    @property
    def secure(self) -> bool:
        return self.infra.config.secure

    @property
    def label(self) -> str:
        return "TLS + ACLs" if self.secure else "plaintext (security cost comparison only)"

    def operator(self) -> KafkaConnection:
        """Provisioning, load generators and observers: the operator principal (a super user)."""
        return self.deployment.operator()

    @property
    def bootstrap(self) -> str:
        return self.infra.config.bootstrap

    @property
    def mqtt_port(self) -> int:
        return self.infra.config.mqtt_port

    def describe(self) -> str:
        return f"Kafka {self.bootstrap} + Mosquitto 127.0.0.1:{self.mqtt_port}, {self.label}"

    def broker_pid(self) -> int | None:
        node = self.infra.config.kafka_nodes()[0]
        if not is_running(node.pid_file):
            return None
        return int(node.pid_file.read_text().strip())

    def down_if_started(self) -> None:
        if self.started_here:
            self.infra.down()


@dataclass(frozen=True, slots=True)
class RunTopics:
    """A run's own topic prefix, so no run restores or re-reads another run's state."""

    operator: KafkaConnection
    names: TopicNames
    partitions: int

    async def create(self) -> None:
        per_topic = {
            t: self.partitions for t in (Topic.INGRESS, Topic.EVENTS, Topic.STATE, Topic.SHIELDING, Topic.CHAIN)
        }
        await create_topics(self.operator, self.names, 1, per_topic)

    async def register(self, registrations: list[bytes]) -> None:
        await publish_key_events(self.operator, self.names.keys, registrations)

    async def delete(self, extra: tuple[str, ...] = ()) -> None:
        """Best effort: keep the bench broker small across runs."""
        admin = kafka.admin(self.operator)
        names = [self.names.name(t) for t in Topic] + list(extra)
        with contextlib.suppress(KafkaError, OSError):
            await admin.start()
            try:
                await admin.delete_topics(names)
            finally:
                await admin.close()
