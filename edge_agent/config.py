"""The edge agent's settings: one typed object, loaded from TOML and the environment.

Precedence: built-in defaults < TOML file < ``EDGE_AGENT_<FIELD>`` environment variables
(e.g. ``EDGE_AGENT_KAFKA_BOOTSTRAP=broker:9092``). Every value is validated at start-up;
a bad value raises :class:`~edge_agent.errors.ConfigError` naming the key, the value and
what is expected.

TOML layout (see ``deploy/edge-agent.toml``)::

    [agent]     id, site, data_dir, patients_file
    [transport] kind = "kafka" | "mqtt"
    [kafka]     bootstrap, ingress_topic, replica_topic (state_topic, shielding_topic: read no more)
    [replica]   follow (true: keep the offline replica from the site's feed; needs core_public_key_hex)
    [mqtt]      host, port
    [http]      host, port, allow_remote
    [outbox]    disk_cap_bytes, synchronous, batch_max_events, linger_ms, ack_timeout_s,
                backoff_base_s, backoff_cap_s
    [secrets]   pseudonym_secret_file, signing_key_file, api_token_file, core_public_key_hex
    [tls]       kafka_security ("SSL" | "PLAINTEXT"), mqtt_tls, ca_file, cert_file, key_file
                (mutual TLS to Kafka and Mosquitto with the agent's certificate, CN = agent id;
                plaintext only when kafka_security = "PLAINTEXT" / mqtt_tls = false, for debugging)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.decision.policy_doc import PolicyDocumentError, parse_policy
from edge_agent.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "load_settings", "settings_from_mapping"]

ENV_PREFIX = "EDGE_AGENT_"
# Agent ids appear in MQTT topic levels and Kafka keys: no '/', '+', '#' or spaces.
_AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# ODS organisation codes are 3-10 upper-case alphanumerics (NHS ODS data standard, DCB0090).
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
_MIB = 1024 * 1024
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's legal topic names (org.apache.kafka.common.internals.Topic)

Transport = Literal["kafka", "mqtt"]
Synchronous = Literal["FULL", "NORMAL"]


@dataclass(frozen=True, slots=True)
class Settings:
    agent_id: str
    site: str
    data_dir: Path
    pseudonym_secret_file: Path  # the site's pseudonym secret (keys site-secret), never the national one
    signing_key_file: Path
    transport: Transport = "kafka"
    kafka_bootstrap: str = "127.0.0.1:9092"
    ingress_topic: str = "consent.ingress"
    replica_topic: str = ""  # the site's feed; "" = <prefix of ingress_topic>.site.<site> (see kafka_replica_topic)
    state_topic: str = "consent.state"  # not read any more (agents read only their site's feed); accepted for old files
    shielding_topic: str = "consent.shielding"  # likewise
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883  # IANA-registered MQTT port
    http_host: str = "127.0.0.1"  # loopback: only the clinical system on this host may submit
    http_port: int = 8710
    http_allow_remote: bool = False
    disk_cap_bytes: int = 1024 * _MIB  # 1 GiB holds ~3 million ~300-byte events: days of outage
    synchronous: Synchronous = "FULL"  # fsync the WAL at every group commit (survives power loss)
    batch_max_events: int = 500  # keeps one signed batch well under Kafka's 1 MiB max.request.size
    linger_ms: int = 5  # wait this long for more events before publishing a part-full batch
    ack_timeout_s: float = 30.0  # end-to-end ack wait before the batch is retried
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0  # an outage of hours is retried at most once a minute
    patients_file: Path | None = None  # one patient key (this site's pseudonym) per line: the replica's scope
    decision_policy_file: Path | None = None  # the deployment's decision policy (the core's document; None = defaults)
    kafka_security: str = "SSL"  # "SSL" (mutual TLS) or "PLAINTEXT" (debugging only)
    mqtt_tls: bool = True  # False: plaintext MQTT, debugging only
    tls_ca_file: Path | None = None  # the deployment CA's certificate (PEM)
    tls_cert_file: Path | None = None  # this agent's certificate (PEM, CN = agent id)
    tls_key_file: Path | None = None  # its private key (PEM, mode 0600)
    api_token_file: Path | None = None  # the local API's bearer token (mode 0600); required unless insecure_api
    insecure_api: bool = False  # True: the local API takes no token (debugging only)
    http_tls_cert_file: Path | None = None  # HTTPS for the local API: required when http_allow_remote = true
    http_tls_key_file: Path | None = None  # its private key (mode 0600)
    core_public_key_hex: str = ""  # the core's Ed25519 key that signs MQTT acks and replica records
    follow_replica: bool = True  # keep the offline replica from the site's feed (requires core_public_key_hex)

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.sqlite3"

    @property
    def replica_path(self) -> Path:
        return self.data_dir / "replica.sqlite3"

    @property
    def kafka_replica_topic(self) -> str:
        """This site's replica feed: ``replica_topic``, or ``<prefix>.site.<site>`` where ``<prefix>`` is
        ``ingress_topic`` without its last ``.ingress`` part (``consent.ingress`` -> ``consent.site.A12345``)."""
        if self.replica_topic:
            return self.replica_topic
        prefix = self.ingress_topic.removesuffix(".ingress") if self.ingress_topic.endswith(".ingress") else "consent"
        return f"{prefix}.site.{self.site}"

    def core_public_key(self) -> Ed25519PublicKey:
        """The core's replica-signing key (validated at load when the replica is followed)."""
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.core_public_key_hex))

    def kafka_connection(self) -> KafkaConnection:
        """How this agent reaches Kafka: mutual TLS with its own certificate unless kafka_security = PLAINTEXT."""
        if self.kafka_security == "PLAINTEXT":
            return KafkaConnection(self.kafka_bootstrap)
        return KafkaConnection(self.kafka_bootstrap, "SSL", *self._tls_files())

    def mqtt_connection(self) -> MqttConnection:
        """How this agent reaches the MQTT broker: mutual TLS with its own certificate unless mqtt_tls = false."""
        if not self.mqtt_tls:
            return MqttConnection(self.mqtt_host, self.mqtt_port)
        ca, cert, key = self._tls_files()
        return MqttConnection(self.mqtt_host, self.mqtt_port, tls=True, ca_file=ca, cert_file=cert, key_file=key)

    def _tls_files(self) -> tuple[str, str, str]:
        return (str(self.tls_ca_file or ""), str(self.tls_cert_file or ""), str(self.tls_key_file or ""))

    def __post_init__(self) -> None:
        _validate(self)


_TOML_KEYS: Mapping[tuple[str, str], str] = {
    ("agent", "id"): "agent_id",
    ("agent", "site"): "site",
    ("agent", "data_dir"): "data_dir",
    ("agent", "patients_file"): "patients_file",
    ("decision", "policy_file"): "decision_policy_file",
    ("transport", "kind"): "transport",
    ("kafka", "bootstrap"): "kafka_bootstrap",
    ("kafka", "ingress_topic"): "ingress_topic",
    ("kafka", "state_topic"): "state_topic",
    ("kafka", "shielding_topic"): "shielding_topic",
    ("kafka", "replica_topic"): "replica_topic",
    ("replica", "follow"): "follow_replica",
    ("mqtt", "host"): "mqtt_host",
    ("mqtt", "port"): "mqtt_port",
    ("http", "host"): "http_host",
    ("http", "port"): "http_port",
    ("http", "allow_remote"): "http_allow_remote",
    ("outbox", "disk_cap_bytes"): "disk_cap_bytes",
    ("outbox", "synchronous"): "synchronous",
    ("outbox", "batch_max_events"): "batch_max_events",
    ("outbox", "linger_ms"): "linger_ms",
    ("outbox", "ack_timeout_s"): "ack_timeout_s",
    ("outbox", "backoff_base_s"): "backoff_base_s",
    ("outbox", "backoff_cap_s"): "backoff_cap_s",
    ("secrets", "pseudonym_secret_file"): "pseudonym_secret_file",
    ("secrets", "signing_key_file"): "signing_key_file",
    ("secrets", "api_token_file"): "api_token_file",
    ("secrets", "core_public_key_hex"): "core_public_key_hex",
    ("http", "insecure_api"): "insecure_api",
    ("http", "tls_cert_file"): "http_tls_cert_file",
    ("http", "tls_key_file"): "http_tls_key_file",
    ("tls", "kafka_security"): "kafka_security",
    ("tls", "mqtt_tls"): "mqtt_tls",
    ("tls", "ca_file"): "tls_ca_file",
    ("tls", "cert_file"): "tls_cert_file",
    ("tls", "key_file"): "tls_key_file",
}
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def load_settings(path: Path | None, env: Mapping[str, str]) -> Settings:
    """Read ``path`` (TOML, optional) then overlay ``EDGE_AGENT_*`` variables from ``env``."""
    raw: dict[str, object] = {}
    if path is not None:
        raw.update(_flatten_toml(path))
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX) :].lower()
            if key not in _FIELDS:
                raise ConfigError(f"unknown environment variable {name}; known: {_env_names()}")
            raw[key] = value
    return settings_from_mapping(raw)


def settings_from_mapping(raw: Mapping[str, object]) -> Settings:
    """Build settings from flat field names, coercing strings (from env vars) to field types."""
    missing = [n for n, f in _FIELDS.items() if n not in raw and _required(f)]
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(sorted(missing))}")
    values = {name: _coerce(name, value) for name, value in raw.items()}
    return Settings(**values)  # type: ignore[arg-type]


def _flatten_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    flat: dict[str, object] = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for key, value in table.items():
            name = _TOML_KEYS.get((section, key))
            if name is None:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            flat[name] = value
    return flat


def _required(f: dataclasses.Field[object]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _env_names() -> str:
    return ", ".join(ENV_PREFIX + n.upper() for n in _FIELDS)


def _coerce(name: str, value: object) -> object:
    if name not in _FIELDS:
        raise ConfigError(f"unknown setting {name!r}")
    kind = str(_FIELDS[name].type)
    try:
        if kind.startswith("Path"):
            return None if value in (None, "") else Path(str(value))
        if kind == "int":
            return _as_int(value)
        if kind == "float":
            return float(value)  # type: ignore[arg-type]
        if kind == "bool":
            return _as_bool(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}={value!r} must be of type {kind}") from exc
    return value if not isinstance(value, str) else value.strip()


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError("bool is not an int")
    if isinstance(value, int):
        return value
    return int(str(value).replace("_", ""))


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _validate(s: Settings) -> None:
    _check(bool(_AGENT_ID.match(s.agent_id)), "agent_id", s.agent_id, "1-64 of [A-Za-z0-9._-]")
    _check(bool(_ODS_CODE.match(s.site)), "site", s.site, "an ODS code: 3-10 of [A-Z0-9]")
    _check(s.transport in ("kafka", "mqtt"), "transport", s.transport, '"kafka" or "mqtt"')
    _check(s.synchronous in ("FULL", "NORMAL"), "synchronous", s.synchronous, '"FULL" or "NORMAL"')
    for port_name in ("mqtt_port", "http_port"):
        port = getattr(s, port_name)
        _check(0 < port < 65536, port_name, port, "a TCP port 1-65535")
    _check(s.disk_cap_bytes >= _MIB, "disk_cap_bytes", s.disk_cap_bytes, ">= 1 MiB (1048576)")
    _check(1 <= s.batch_max_events <= 10_000, "batch_max_events", s.batch_max_events, "1..10000")
    _check(0 <= s.linger_ms <= 10_000, "linger_ms", s.linger_ms, "0..10000")
    _check(s.ack_timeout_s > 0, "ack_timeout_s", s.ack_timeout_s, "> 0")
    _check(0 < s.backoff_base_s <= s.backoff_cap_s, "backoff_base_s", s.backoff_base_s, "0 < base <= cap")
    _check(bool(s.kafka_bootstrap), "kafka_bootstrap", s.kafka_bootstrap, "host:port[,host:port]")
    remote_ok = s.http_allow_remote or _is_loopback(s.http_host)
    _check(remote_ok, "http_host", s.http_host, "a loopback address unless http_allow_remote = true")
    _check(s.kafka_security in ("SSL", "PLAINTEXT"), "kafka_security", s.kafka_security, '"SSL" or "PLAINTEXT"')
    uses_tls = (s.transport == "kafka" and s.kafka_security == "SSL") or (s.transport == "mqtt" and s.mqtt_tls)
    if uses_tls:
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            _check(getattr(s, name) is not None, name, None, "a PEM file (mutual TLS); or plaintext for debugging")
    if s.transport == "mqtt":  # the bridge's acks delete outbox rows: only ones signed by the core count
        _check(_is_ed25519_public_hex(s.core_public_key_hex), "core_public_key_hex", s.core_public_key_hex, _CORE_KEY)
    _check(
        s.insecure_api or s.api_token_file is not None,
        "api_token_file",
        None,
        "a token file of mode 0600 (`edge-agent token` writes one); or insecure_api = true for debugging",
    )
    _check(not (s.http_allow_remote and s.insecure_api), "insecure_api", True, "false when http_allow_remote = true")
    if s.http_allow_remote:  # the token would cross the network: only over TLS
        for name in ("http_tls_cert_file", "http_tls_key_file"):
            _check(getattr(s, name) is not None, name, None, "a PEM file: the API serves HTTPS when http_allow_remote")
    if s.follow_replica:
        _check(
            _is_ed25519_public_hex(s.core_public_key_hex),
            "core_public_key_hex",
            s.core_public_key_hex,
            "the core's replica-signing public key, 64 hex digits (or [replica] follow = false: no offline replica)",
        )
    if s.replica_topic:
        _check(bool(_TOPIC.match(s.replica_topic)), "replica_topic", s.replica_topic, "a Kafka topic name")


def _is_ed25519_public_hex(text: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        return False
    return True


_CORE_KEY = 'the core\'s raw Ed25519 public key, 64 hex digits (it signs MQTT acks), when transport = "mqtt"'


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"setting {name}={value!r} is invalid: expected {expected}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_decision_policy(path: Path | None) -> DecisionPolicy:
    """The deployment's decision policy from ``decision_policy_file`` (the core's document); the defaults if unset."""
    if path is None:
        return DEFAULT_POLICY
    try:
        with path.open("rb") as f:
            return parse_policy(tomllib.load(f))
    except (OSError, tomllib.TOMLDecodeError, PolicyDocumentError) as exc:
        raise ConfigError(f"setting decision_policy_file={str(path)!r}: {exc}") from exc
