"""``Infra``: bring the local Kafka (1 or 3 nodes) and Mosquitto up, report status, take them down."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from broker.infra import kafka, mosquitto, process
from broker.infra.errors import InfraError

__all__ = ["Infra", "InfraConfig", "InfraStatus", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$CONSENT_CACHE_DIR``, else ``.cache`` in the source checkout, else ``~/.cache/consent-broker``."""
    env = os.environ.get("CONSENT_CACHE_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".cache"
    return Path.home() / ".cache" / "consent-broker"


@dataclass(frozen=True, slots=True)
class InfraConfig:
    """Where the services live and which loopback ports they use (env: CONSENT_INFRA_*)."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    name: str = "default"  # several independent stacks can coexist (tests use their own)
    kafka_port: int = 9092
    mqtt_port: int = 1883
    nodes: int = 1

    @classmethod
    def from_env(cls, **overrides: object) -> InfraConfig:
        env = os.environ
        values: dict[str, object] = {
            "name": env.get("CONSENT_INFRA_NAME", "default"),
            "kafka_port": int(env.get("CONSENT_KAFKA_PORT", "9092")),
            "mqtt_port": int(env.get("CONSENT_MQTT_PORT", "1883")),
            "nodes": int(env.get("CONSENT_KAFKA_NODES", "1")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)  # type: ignore[arg-type]
        if config.nodes not in (1, 3):
            raise InfraError(f"--nodes must be 1 or 3, got {config.nodes}")
        return config

    @property
    def root(self) -> Path:
        return self.cache_dir / "infra" / self.name

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.kafka_nodes())

    def kafka_nodes(self) -> list[kafka.KafkaNode]:
        return kafka.node_layout(self.root / f"kafka{self.nodes}", self.kafka_port, self.nodes)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    running: bool
    address: str
    version: str


@dataclass(frozen=True, slots=True)
class InfraStatus:
    services: tuple[ServiceStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(s.running for s in self.services)

    def render(self) -> str:
        lines = [f"{s.name:<12} {'up' if s.running else 'down':<5} {s.address:<22} {s.version}" for s in self.services]
        return "\n".join(lines)


class Infra:
    def __init__(self, config: InfraConfig) -> None:
        self.config = config
        self.mqtt = mosquitto.MosquittoService(config.root / "mosquitto", config.mqtt_port)

    def up(self) -> float:
        """Start whatever is not running; idempotent. Returns seconds taken."""
        started = time.monotonic()
        kafka.java_path()  # fail in one line before anything else when Java is missing
        libs = kafka.ensure_jars(self.config.cache_dir)
        nodes = self.config.kafka_nodes()
        kafka.format_nodes(libs, nodes)
        for node in nodes:  # start all before waiting: a node is unfenced only with a controller majority
            kafka.start_node(libs, node)
        self.mqtt.start()
        for node in nodes:
            kafka.wait_ready(node)
        return time.monotonic() - started

    def down(self) -> list[str]:
        stopped = [f"kafka-{n.node_id}" for n in self.config.kafka_nodes() if process.stop(n.pid_file)]
        if self.mqtt.stop():
            stopped.append("mosquitto")
        return stopped

    def kill_node(self, node_id: int) -> None:
        """kill -9 one Kafka node (fault tests)."""
        node = self.config.kafka_nodes()[node_id - 1]
        process.kill(node.pid_file)

    def start_node(self, node_id: int) -> None:
        libs = kafka.ensure_jars(self.config.cache_dir)
        node = self.config.kafka_nodes()[node_id - 1]
        kafka.start_node(libs, node)
        kafka.wait_ready(node)

    def reset(self) -> None:
        """Stop everything and delete all data (topics, sessions)."""
        import shutil

        self.down()
        shutil.rmtree(self.config.root, ignore_errors=True)

    def status(self) -> InfraStatus:
        services = [
            ServiceStatus(
                f"kafka-{n.node_id}",
                process.is_running(n.pid_file) and process.port_open(n.port),
                f"127.0.0.1:{n.port}",
                f"Apache Kafka {kafka.KAFKA_VERSION} (KRaft)",
            )
            for n in self.config.kafka_nodes()
        ]
        try:
            mqtt_version = mosquitto.version(mosquitto.ensure_installed()) if self.mqtt.running() else "-"
        except InfraError:
            mqtt_version = "not installed"
        services.append(
            ServiceStatus("mosquitto", self.mqtt.running(), f"127.0.0.1:{self.config.mqtt_port}", mqtt_version)
        )
        return InfraStatus(tuple(services))
