"""Credentials and authorisation of a secure stack: connection settings per principal, ACLs applied to Kafka.

The table is ``broker/infra/acls.py`` (pure); this module turns it into CreateAcls calls (as the operator)
and into Mosquitto's ACL file, and builds the ``KafkaConnection``/``MqttConnection`` of a principal from the
files ``broker/infra/pki.py`` issued.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broker.infra.acls import (
    CORE_ROLES,
    Deployment,
    KafkaAcl,
    Principal,
    Role,
    core_principal,
    kafka_acls,
    mosquitto_acl_file,
)
from broker.infra.errors import InfraError
from broker.infra.pki import PrincipalFiles
from consent_io.connection import KafkaConnection, MqttConnection
from consent_io.kafka_acl import AclBindingTuple, create_acls

__all__ = [
    "MqttPrincipals",
    "apply_kafka_acls",
    "grant_for_prefix",
    "kafka_connection",
    "mqtt_connection",
    "to_wire",
]


def kafka_connection(bootstrap: str, files: PrincipalFiles) -> KafkaConnection:
    """How a principal reaches a secure Kafka (mTLS)."""
    return KafkaConnection(
        bootstrap, "SSL", ca_file=str(files.ca_file), cert_file=str(files.cert_file), key_file=str(files.key_file)
    )


def mqtt_connection(host: str, port: int, files: PrincipalFiles) -> MqttConnection:
    """How a principal reaches a secure Mosquitto (mTLS; the username is the certificate's CN)."""
    return MqttConnection(
        host, port, tls=True, ca_file=str(files.ca_file), cert_file=str(files.cert_file), key_file=str(files.key_file)
    )


def to_wire(acl: KafkaAcl) -> AclBindingTuple:
    return (
        int(acl.resource_type),
        acl.resource_name,
        int(acl.pattern_type),
        acl.principal,
        acl.host,
        int(acl.operation),
        acl.permission,
    )


async def apply_kafka_acls(operator: KafkaConnection, principals: Iterable[Principal], deployment: Deployment) -> int:
    """Create the table's bindings of every principal in ``deployment``, as the operator. Idempotent."""
    bindings = [to_wire(acl) for p in principals for acl in kafka_acls(p, deployment)]
    return await create_acls(operator, bindings)


async def grant_for_prefix(
    operator: KafkaConnection,
    prefix: str,
    app_id: str = "consent-core",
    principals: Iterable[Principal] | None = None,
) -> int:
    """Give principals their table rights on a topic prefix (test fixtures call this per unique prefix).

    Default principals: the five core stages (``core.<stage>``). Pass agents, subscribers or witnesses too.
    """
    chosen = list(principals) if principals is not None else [core_principal(r) for r in CORE_ROLES]
    return await apply_kafka_acls(operator, chosen, Deployment(prefix, app_id))


class MqttPrincipals:
    """The principals Mosquitto's ACL file names, kept as ``name,role,site`` lines in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Principal]:
        if not self.path.exists():
            return []
        out: list[Principal] = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != 3:
                raise InfraError(f"{self.path} line {number}: expected name,role,site")
            out.append(Principal(parts[0], Role(parts[1]), parts[2]))
        return out

    def add(self, principal: Principal) -> bool:
        """Record ``principal``; False when it was already there (same name: replaced)."""
        current = {p.name: p for p in self.load()}
        if current.get(principal.name) == principal:
            return False
        current[principal.name] = principal
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(f"{p.name},{p.role.value},{p.site}\n" for p in current.values()))
        return True

    def acl_file(self) -> str:
        return mosquitto_acl_file(self.load())
