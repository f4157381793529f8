"""A real Apache Kafka broker (KRaft, combined broker+controller) from Maven Central jars.

Facts behind the settings are in ``../shared/notes/kafka-without-docker.md``: the broker opens
its client port only once unfenced, so a TCP connect is a real readiness check.
"""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from broker.infra import process
from broker.infra.errors import InfraError

__all__ = ["KAFKA_VERSION", "KafkaNode", "KafkaTls", "ensure_jars", "kafka_uuid", "node_layout"]

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.3.1"  # 4.4.0's kafka-tools needs artifacts Maven Central does not serve here
# Each broker JVM gets a fixed heap; without it a JVM takes a quarter of RAM (notes).
HEAP = "-Xmx1g"
READY_TIMEOUT_S = 120.0  # tens of seconds on 2 cores, x3 for a cluster starting together

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: warn
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: info
      - name: kafka.server.BrokerServer
        level: info
"""


def kafka_uuid() -> str:
    """A Kafka ``Uuid`` string (URL-safe base64 of 16 random bytes, no padding)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def ensure_jars(cache: Path) -> Path:
    """Return the folder of broker and tools jars, fetching them with Maven on first use."""
    libs = cache / "kafka" / "libs"
    marker = libs / f".complete-{KAFKA_VERSION}"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise InfraError(
            "Maven (mvn) not found: it fetches the Kafka jars on first use; install it with "
            "'apt-get install -y maven' (Debian) or from https://maven.apache.org"
        )
    libs.mkdir(parents=True, exist_ok=True)
    pom = cache / "kafka" / "pom.xml"
    pom.write_text(resources.files("broker.infra").joinpath("kafka-pom.xml").read_text())
    log.info("fetching Kafka %s jars into %s", KAFKA_VERSION, libs)
    cmd = [
        "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise InfraError(f"mvn could not fetch the Kafka jars: {' | '.join(tail)}")
    marker.touch()
    return libs


# Certificate subject "CN=<name>" -> principal User:<name> (the CN is the principal's name; see pki.py).
PRINCIPAL_MAPPING = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"  # KRaft's built-in ACL authorizer


@dataclass(frozen=True, slots=True)
class KafkaTls:
    """mTLS on every listener (clients, inter-broker, controller) and the StandardAuthorizer."""

    ca_file: Path  # PEM truststore: the deployment's CA
    keystore_file: Path  # PEM keystore: the broker principal's unencrypted PKCS#8 key + certificate
    super_users: str  # "User:operator;User:broker"

    def properties(self) -> dict[str, str]:
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": PRINCIPAL_MAPPING,
            "ssl.endpoint.identification.algorithm": "https",  # brokers check each other's SAN (127.0.0.1)
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": self.super_users,
        }


@dataclass(frozen=True, slots=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    directory: Path  # holds server.properties, data/, logs, pid

    @property
    def pid_file(self) -> Path:
        return self.directory / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "kafka.out"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def properties(self, quorum: str, replication: int, tls: KafkaTls | None = None) -> str:
        min_isr = 2 if replication >= 3 else 1
        client = "SSL" if tls else "PLAINTEXT"  # the listener name is its protocol: SSL://... or PLAINTEXT://...
        listeners = f"{client}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.bootstrap.servers": quorum,
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": client,
            "listener.security.protocol.map": f"CONTROLLER:{client},{client}:{client}",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replication),
            "offsets.topic.num.partitions": "8",  # default 50 makes first group join slow on 2 cores
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": str(replication),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",  # the project provisions its own topics
            "log.retention.hours": "168",
            "log.cleaner.min.compaction.lag.ms": "0",
            **(tls.properties() if tls else {}),
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())


def node_layout(root: Path, base_port: int, nodes: int) -> list[KafkaNode]:
    """Node i listens on base_port + 2i (clients) and base_port + 2i + 1 (controller)."""
    return [KafkaNode(i + 1, base_port + 2 * i, base_port + 2 * i + 1, root / f"kafka-{i + 1}") for i in range(nodes)]


def java_path() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError(
            "Java not found: Kafka needs a Java 17+ runtime; install it with "
            "'apt-get install -y openjdk-17-jre-headless' (Debian)"
        )
    return java


def java_argv(libs: Path, node: KafkaNode, main: str, *args: str) -> list[str]:
    log4j = node.directory / "log4j2.yaml"
    return [
        java_path(), HEAP, "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={node.directory / 'logs'}",
        "-cp", f"{libs}/*", main, *args,
    ]  # fmt: skip


def format_nodes(libs: Path, nodes: list[KafkaNode], tls: KafkaTls | None = None) -> None:
    """Write configs and format storage once; an already formatted node keeps its data and cluster id."""
    quorum = ",".join(f"127.0.0.1:{n.controller_port}" for n in nodes)
    replication = 3 if len(nodes) >= 3 else 1
    cluster_file = nodes[0].directory.parent / "cluster.id"
    if not cluster_file.exists():
        cluster_file.parent.mkdir(parents=True, exist_ok=True)
        cluster_file.write_text(kafka_uuid())
    cluster_id = cluster_file.read_text().strip()
    dir_ids = {n.node_id: kafka_uuid() for n in nodes}
    initial = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}:{dir_ids[n.node_id]}" for n in nodes)
    for node in nodes:
        node.directory.mkdir(parents=True, exist_ok=True)
        (node.directory / "log4j2.yaml").write_text(LOG4J2)
        props = node.directory / "server.properties"
        props.write_text(node.properties(quorum, replication, tls))
        if (node.data_dir / "meta.properties").exists():
            continue
        # with several controllers each node takes its directory id from its own --initial-controllers entry
        mode = ["--standalone"] if len(nodes) == 1 else ["--initial-controllers", initial]
        argv = java_argv(
            libs, node, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props), *mode
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(f"kafka storage format failed for node {node.node_id}: {result.stdout}{result.stderr}")


def start_node(libs: Path, node: KafkaNode) -> None:
    if process.is_running(node.pid_file):
        return
    try:  # a restarted broker could not bind its port (issue 13): wait for it to come free, or say why not
        for port in (node.port, node.controller_port):
            process.wait_port_free(port, f"Kafka node {node.node_id}")
    except process.PortBusyError as exc:
        raise InfraError(str(exc)) from exc
    argv = java_argv(libs, node, "kafka.Kafka", str(node.directory / "server.properties"))
    process.start_detached(argv, node.pid_file, node.log_file, node.directory)


def wait_ready(node: KafkaNode, timeout_s: float = READY_TIMEOUT_S) -> None:
    if not process.wait_for_port(node.port, timeout_s, alive=node.pid_file):
        tail = node.log_file.read_text(errors="replace").strip().splitlines()[-5:] if node.log_file.exists() else []
        raise InfraError(
            f"Kafka node {node.node_id} not ready on 127.0.0.1:{node.port} within {timeout_s:.0f}s; "
            f"log {node.log_file}: {' | '.join(tail)}"
        )
