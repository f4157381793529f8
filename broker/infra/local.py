"""One local deployment's credentials, for the demo, the tests and the load tests (secure unless --insecure).

:class:`LocalDeployment` wraps an :class:`~broker.infra.Infra` and hands out, per principal, exactly what a
process needs to talk to it: the operator's connections (topic provisioning, key registration, test
observers), the core's TLS settings (each stage its own certificate ``core.<stage>``), an agent's TLS
settings (certificate CN = agent id, Mosquitto ACL for its own topics and site), Kafka ACLs for a topic
prefix, and the API's door (HTTPS certificate, token key, client registry with the clients asked for).
On an insecure stack every method returns the plaintext equivalent, so callers never branch.

Pseudonyms (issue 12 item 11): the core gets the national secret (``pseudonym_secret_file`` in
:meth:`LocalDeployment.core_settings`; ``national_secret`` or a random one kept beside the stack), an
agent only its site's (:meth:`LocalDeployment.site_secret_file`, derived as ``consent-broker keys
site-secret`` does).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.audit.keyfile import generate_key_file
from broker.audit.note import ALG_ED25519
from broker.auth.client import ApiCredentials
from broker.auth.provision import add_client, new_token_key
from broker.infra.acls import CORE_ROLES, Principal, Role, core_principal
from broker.infra.manager import Infra
from broker.infra.security import grant_for_prefix
from broker.site_secrets import read_national_secret, write_site_secret
from consent_io.connection import KafkaConnection, MqttConnection
from consent_io.secrets import write_secret
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = ["ApiClientSpec", "LocalDeployment"]

API_SERVER = "core.api-https"  # the API's HTTPS server certificate (SAN 127.0.0.1, localhost)


@dataclass(frozen=True, slots=True)
class ApiClientSpec:
    client_id: str
    organisation: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...] = ("decisions", "patient.read", "reports")


@dataclass(frozen=True, slots=True)
class LocalDeployment:
    infra: Infra
    national_secret: bytes | None = None  # None: a random one, created once beside the stack and kept

    @property
    def pseudonym_secret_path(self) -> Path:
        return self.infra.config.root / "pseudonyms" / "national.secret"

    def pseudonym_secret_file(self) -> Path:
        """The core's national pseudonym secret (hex, mode 0600), written if missing or not ``national_secret``."""
        path = self.pseudonym_secret_path
        wanted = self.national_secret
        current = read_national_secret(path) if path.exists() else None
        if current is None or (wanted is not None and current != wanted):
            write_secret(path, (wanted if wanted is not None else os.urandom(32)).hex().encode("ascii") + b"\n")
        return path

    def pseudonyms(self) -> CorePseudonyms:
        """The core's translations under this deployment's national secret (tests: the keys the core uses)."""
        return CorePseudonyms(read_national_secret(self.pseudonym_secret_file()))

    def site_secret_file(self, site: str) -> Path:
        """``site``'s pseudonym secret (hex, mode 0600): its agents' ``pseudonym_secret_file``."""
        path = self.infra.config.root / "pseudonyms" / f"site-{site}.secret"
        write_site_secret(read_national_secret(self.pseudonym_secret_file()), site, path)
        return path

    @property
    def secure(self) -> bool:
        return self.infra.config.secure

    @property
    def ca_file(self) -> Path:
        return self.infra.pki.ca_file

    def operator(self) -> KafkaConnection:
        return self.infra.kafka_connection("operator")

    def operator_mqtt(self) -> MqttConnection:
        return self.infra.mqtt_connection("operator")

    def core_settings(self) -> dict[str, object]:
        """CoreSettings overrides: Kafka and MQTT security for every stage."""
        secret = str(self.pseudonym_secret_file())
        if not self.secure:
            return {
                "kafka_security": "PLAINTEXT",
                "mqtt_tls": False,
                "bootstrap": self.infra.config.bootstrap,
                "pseudonym_secret_file": secret,
            }
        for role in CORE_ROLES:
            self.infra.issue(core_principal(role))
        return {
            "pseudonym_secret_file": secret,
            "bootstrap": self.infra.config.bootstrap,
            "mqtt_port": self.infra.config.mqtt_port,
            "tls_ca_file": str(self.infra.pki.ca_file),
            "tls_credentials_dir": str(self.infra.config.pki_dir),
        }

    def core_env(self) -> dict[str, str]:
        """The same as ``CONSENT_*`` environment variables (a core started as a subprocess)."""
        settings = self.core_settings().items()
        return {f"CONSENT_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in settings}

    def agent_settings(self, agent_id: str, site: str) -> dict[str, object]:
        """Edge agent settings overrides: its site's pseudonym secret, its certificate (CN = agent id) and, on MQTT,
        its ACL for ``site``."""
        secret = self.site_secret_file(site)
        if not self.secure:
            return {"kafka_security": "PLAINTEXT", "mqtt_tls": False, "pseudonym_secret_file": secret}
        files = self.infra.issue(Principal(agent_id, Role.AGENT, site))
        return {
            "pseudonym_secret_file": secret,
            "tls_ca_file": files.ca_file,
            "tls_cert_file": files.cert_file,
            "tls_key_file": files.key_file,
        }

    def agent_kafka(self, agent_id: str, site: str) -> KafkaConnection:
        self.infra.issue(Principal(agent_id, Role.AGENT, site))
        return self.infra.kafka_connection(agent_id)

    def agent_mqtt(self, agent_id: str, site: str) -> MqttConnection:
        self.infra.issue(Principal(agent_id, Role.AGENT, site))
        return self.infra.mqtt_connection(agent_id)

    def stage_mqtt(self, stage: str) -> MqttConnection:
        """The MQTT connection of a core stage (bridge, mirror) run outside a Core (tests, benches)."""
        role = Role(stage)
        self.infra.issue(core_principal(role))
        return self.infra.mqtt_connection(f"core.{stage}")

    def stage_kafka(self, stage: str) -> KafkaConnection:
        self.infra.issue(core_principal(Role(stage)))
        return self.infra.kafka_connection(f"core.{stage}")

    async def grant(self, prefix: str, app_id: str, agents: Iterable[tuple[str, str]] = ()) -> None:
        """Kafka ACLs on ``prefix`` for the core stages of ``app_id`` and the given (agent id, site) pairs."""
        if not self.secure:
            return
        principals = [core_principal(r) for r in CORE_ROLES]
        principals += [Principal(agent, Role.AGENT, site) for agent, site in agents]
        await grant_for_prefix(self.operator(), prefix, app_id, principals)

    def api_door(self, directory: Path, clients: Iterable[ApiClientSpec]) -> tuple[dict[str, object], dict[str, Path]]:
        """CoreSettings overrides for the API (HTTPS + OAuth) and each client's private key file.

        Insecure stacks get ``insecure_http`` (plaintext, no authentication) and no keys.
        """
        if not self.secure:
            directory.mkdir(parents=True, exist_ok=True)
            audit_key = directory / "audit-log.key"
            if not audit_key.exists():
                generate_key_file(audit_key, "pending", ALG_ED25519)
            return {"insecure_http": True, "audit_key_file": str(audit_key), "insecure_unwitnessed_audit": True}, {}
        directory.mkdir(parents=True, exist_ok=True)
        registry = directory / "api-clients.toml"
        registry.unlink(missing_ok=True)
        keys: dict[str, Path] = {}
        for c in clients:
            keys[c.client_id] = directory / f"{c.client_id}.key.pem"
            add_client(registry, c.client_id, c.organisation, c.roles, c.scopes, keys[c.client_id])
        token_key = directory / "api-token.key"
        new_token_key(token_key)
        server = self.infra.pki.issue(API_SERVER, server=True)
        audit_key = directory / "audit-log.key"
        if not audit_key.exists():
            generate_key_file(audit_key, "pending", ALG_ED25519)
        settings: dict[str, object] = {
            "audit_key_file": str(audit_key),
            "insecure_unwitnessed_audit": True,  # callers that run witnesses replace it (see broker.demo)
            "api_clients_file": str(registry),
            "api_token_key_file": str(token_key),
            "http_tls_cert_file": str(server.cert_file),
            "http_tls_key_file": str(server.key_file),
        }
        return settings, keys

    def api_url(self, port: int) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{port}"

    def api_credentials(self, client_id: str, key_file: Path, port: int) -> ApiCredentials:
        return ApiCredentials(client_id, key_file, f"{self.api_url(port)}/oauth2/token")
