"""``Infra``: bring the local Kafka (1 or 3 nodes) and Mosquitto up, report status, take them down."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from broker.infra import kafka, mosquitto, process, security
from broker.infra.acls import Deployment, Principal, Role, default_principals, super_users
from broker.infra.errors import InfraError
from broker.infra.pki import Pki, PrincipalFiles
from consent_io.connection import KafkaConnection, MqttConnection

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
    # mTLS + deny-by-default ACLs on Kafka and Mosquitto; False (`--insecure`, CONSENT_INFRA_SECURE=0) is
    # plaintext and anonymous, for debugging only.
    secure: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> InfraConfig:
        env = os.environ
        values: dict[str, object] = {
            "name": env.get("CONSENT_INFRA_NAME", "default"),
            "kafka_port": int(env.get("CONSENT_KAFKA_PORT", "9092")),
            "mqtt_port": int(env.get("CONSENT_MQTT_PORT", "1883")),
            "nodes": int(env.get("CONSENT_KAFKA_NODES", "1")),
            "secure": env.get("CONSENT_INFRA_SECURE", "1").lower() not in ("0", "false", "no"),
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

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

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


KAFKA_SERVER = "broker"  # the Kafka brokers' and controllers' principal (a super user)
MQTT_SERVER = "mosquitto"  # Mosquitto's server certificate (not a Kafka principal)


class Infra:
    def __init__(self, config: InfraConfig) -> None:
        self.config = config
        self.pki = Pki(config.pki_dir)
        self._mqtt_principals = security.MqttPrincipals(config.pki_dir / "mqtt-principals.csv")
        tls = None
        if config.secure:
            server = self.pki.files(MQTT_SERVER)
            acl = config.root / "mosquitto" / "acl"
            tls = mosquitto.MosquittoTls(server.ca_file, server.cert_file, server.key_file, acl)
        self.mqtt = mosquitto.MosquittoService(
            config.root / "mosquitto", config.mqtt_port, tls, insecure_debug=not config.secure
        )

    def up(self) -> float:
        """Start whatever is not running; idempotent. Returns seconds taken.

        Secure mode first creates the CA and the default principals' certificates (operator, broker, one per
        core stage), and once Kafka is ready applies their ACLs for the default deployment (prefix ``consent``).
        """
        started = time.monotonic()
        kafka.java_path()  # fail in one line before anything else when Java is missing
        libs = kafka.ensure_jars(self.config.cache_dir)
        nodes = self.config.kafka_nodes()
        tls = self._prepare_credentials() if self.config.secure else None
        kafka.format_nodes(libs, nodes, tls)
        for node in nodes:  # start all before waiting: a node is unfenced only with a controller majority
            kafka.start_node(libs, node)
        self.mqtt.start()
        for node in nodes:
            kafka.wait_ready(node)
        if self.config.secure:
            asyncio.run(
                security.apply_kafka_acls(self.kafka_connection("operator"), default_principals(), Deployment())
            )
        return time.monotonic() - started

    def _prepare_credentials(self) -> kafka.KafkaTls:
        for principal in default_principals():
            self.pki.issue(principal.name, server=principal.name == KAFKA_SERVER)
            if principal.role in (Role.OPERATOR, Role.BRIDGE, Role.MIRROR):
                self._mqtt_principals.add(principal)
        self.pki.issue(MQTT_SERVER, server=True)
        self._write_mqtt_acl()
        broker = self.pki.files(KAFKA_SERVER)
        return kafka.KafkaTls(broker.ca_file, broker.keystore_file, super_users(default_principals()))

    def _write_mqtt_acl(self) -> None:
        if self.mqtt.tls is not None:
            self.mqtt.tls.acl_file.parent.mkdir(parents=True, exist_ok=True)
            self.mqtt.tls.acl_file.write_text(self._mqtt_principals.acl_file())

    def issue(self, principal: str | Principal) -> PrincipalFiles:
        """Credentials of a principal (idempotent). A ``Principal`` that may use MQTT (a gateway, i.e. an
        agent, or the bridge/mirror) is also added to Mosquitto's ACL file, which a running Mosquitto re-reads.
        Kafka ACLs are separate: see :func:`broker.infra.security.grant_for_prefix`."""
        name = principal if isinstance(principal, str) else principal.name
        files = self.pki.issue(name)
        if isinstance(principal, Principal) and principal.role in (Role.AGENT, Role.BRIDGE, Role.MIRROR):
            if self._mqtt_principals.add(principal):
                self._write_mqtt_acl()
                self.mqtt.reload()
        return files

    def kafka_connection(self, principal: str) -> KafkaConnection:
        """How ``principal`` connects to this stack's Kafka (plaintext when the stack is not secure)."""
        if not self.config.secure:
            return KafkaConnection(self.config.bootstrap)
        return security.kafka_connection(self.config.bootstrap, self.pki.issue(principal))

    def mqtt_connection(self, principal: str) -> MqttConnection:
        """How ``principal`` connects to this stack's Mosquitto (plaintext when the stack is not secure)."""
        if not self.config.secure:
            return MqttConnection("127.0.0.1", self.config.mqtt_port)
        return security.mqtt_connection("127.0.0.1", self.config.mqtt_port, self.pki.issue(principal))

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
        self.start_nodes([node_id])

    def start_nodes(self, node_ids: list[int]) -> None:
        """Start these nodes, then wait for each (after a full outage no node is ready before a majority runs)."""
        libs = kafka.ensure_jars(self.config.cache_dir)
        nodes = [self.config.kafka_nodes()[i - 1] for i in node_ids]
        for node in nodes:
            kafka.start_node(libs, node)
        for node in nodes:
            kafka.wait_ready(node)

    def pause_node(self, node_id: int, paused: bool = True) -> None:
        """SIGSTOP (``paused``) or SIGCONT one Kafka node (fault tests: a broker that stops answering)."""
        node = self.config.kafka_nodes()[node_id - 1]
        process.send_signal(node.pid_file, signal.SIGSTOP if paused else signal.SIGCONT)

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
