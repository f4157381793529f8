"""One typed settings object for a core process, from a TOML file and CONSENT_* environment variables.

Every setting is checked when the object is built (:meth:`CoreSettings.load` or the constructor), not
later by the stage that uses it: types, ranges, hex formats, the settings a selected stage requires
and the files they name (read once here, so a missing or malformed file stops the process before
it connects to anything). All problems are reported together in one :class:`SettingsError`, one
line per setting, each naming the setting, its environment variable, the value and what to do.
Secrets are never echoed: file settings show the path, not the contents.
"""

from __future__ import annotations

import csv
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.auth.registry import ClientRegistry, RegistryError
from broker.errors import SettingsError
from broker.mirror.planner import MirrorPlanner, Registration, RegistrationsError, parse_registrations
from consent_io.connection import KafkaConnection, MqttConnection
from consent_io.secrets import SecretFileError, check_secret_mode, read_secret
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.decision.policy_doc import PolicyDocumentError, parse_policy
from consent_wire.identity import MIN_SECRET_BYTES
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = [
    "STAGES",
    "CoreSettings",
    "SettingsError",
    "audit_origin",
    "load_list_sizes",
    "load_registrations",
    "read_hex_file",
]

STAGES = ("verifier", "reconciler", "reports", "bridge", "api", "mirror")
_ED25519_KEY_BYTES = 32  # RFC 8032 section 5.1.5: raw Ed25519 public and private keys are 32 bytes
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class CoreSettings:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "consent"
    app_id: str = "consent-core"  # consumer group and transactional id prefix
    stages: tuple[str, ...] = ("verifier", "reconciler")
    root_public_key_hex: str = ""  # the operator root key that signs agent key events
    pseudonym_secret_file: str = ""  # HMAC key for patient pseudonyms (API requests carry NHS numbers)
    metrics_port: int = 0  # 0 = no metrics endpoint
    metrics_host: str = "127.0.0.1"  # "0.0.0.0" in a pod, where Prometheus and the probes come from outside
    http_host: str = "127.0.0.1"
    http_port: int = 8080  # 0 = any free port (tests); read back from ApiService.port
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    gap_timeout_ms: int = 30_000
    # the verifier's and reconciler's Kafka transactions span every poll for this long (issue 18): larger values
    # cost fewer transaction round-trips per event and add up to this much latency; 0 = one transaction per poll.
    # A transaction holding a shielding record commits at once whatever this is.
    commit_interval_ms: int = 100
    audit_key_file: str = ""  # hex raw Ed25519 private key (0600) signing audit checkpoints; required by the api stage
    audit_checkpoint_every: int = 1000  # (before issue 15) records between checkpoints; now one per group commit
    audit_origin: str = ""  # the audit log's C2SP origin and log key name; "" = "<app_id>/<topic_prefix>.audit"
    audit_witnesses: tuple[str, ...] = ()  # "<https URL> <witness verifier key>" per witness
    audit_witness_quorum: int = 1  # cosignatures every published audit checkpoint needs
    insecure_unwitnessed_audit: bool = False  # checkpoints without witnesses: for debugging only, logged as a warning
    # what an answer (decision, read) waits for on the instance that holds the audit log (issue 16). "request": its
    # audit record is durable on audit-requests (one idempotent acks=all write), and the holder appends it behind
    # the answer, exactly once, as every other instance's; "append": its entry is in the log (one Kafka
    # transaction per group of answers: slower, but the answer names the entry's index at once)
    audit_answer_after: str = "request"
    list_sizes_file: str = ""  # CSV practice,list_size for the objection-rate report
    decision_policy_file: str = (
        ""  # TOML: break-glass roles, NDOP-exempt flows, data-sharing agreements ("" = defaults)
    )
    # the API's persistent views (issue 16): SQLite (WAL) in this folder; a restart resumes from the offsets
    # stored with them. "" = a fresh temporary folder per run (views rebuilt from the topics at every start)
    api_view_dir: str = ""
    api_view_cache_entries: int = 100_000  # patient states held in memory (LRU); ~1.5 KiB each
    registrations_file: str = ""  # CSV site,patient_key: sites the mirror serves besides those seen in events
    # --- the API's door (issue 11): HTTPS, OAuth 2.0 client credentials with private_key_jwt -------------
    api_clients_file: str = ""  # TOML registry of API clients (broker/auth/registry.py); required by the api stage
    api_token_key_file: str = ""  # hex raw Ed25519 private key (0600) signing access tokens; shared by API instances
    api_token_url: str = (
        ""  # the token endpoint URL clients sign as `aud`; "" = https://<http_host>:<port>/oauth2/token
    )
    http_tls_cert_file: str = ""  # PEM certificate chain the API serves HTTPS with
    http_tls_key_file: str = ""  # its PEM private key (mode 0600)
    insecure_http: bool = False  # plaintext HTTP without authentication: for debugging only, logged as a warning
    # --- Kafka and MQTT: mutual TLS, one certificate per stage (principal core.<stage>) ------------------------
    kafka_security: str = "SSL"  # "SSL" (mutual TLS) or "PLAINTEXT" (debugging only)
    mqtt_tls: bool = True  # False: plaintext MQTT (debugging only)
    tls_ca_file: str = ""  # the deployment CA's certificate (PEM)
    tls_credentials_dir: str = ""  # <dir>/core.<stage>/cert.pem and key.pem (0600): each stage's own principal
    core_signing_key_file: str = ""  # hex Ed25519 key (0600) signing MQTT acks and replica records for agents
    site_feed_replication: int = 1  # replication factor of the per-site replica feeds the mirror creates
    # local checkpointed changelog stores (SQLite), so a restart restores only the changelog's tail; "" = none
    state_dir: str = ""
    # Kafka static group membership (issue 13): this process's stable name among the app's core processes, e.g.
    # a StatefulSet pod name. A restart under the same name gets its partitions back at once instead of after
    # the old member's session timeout. Must be unique among running processes; "" = dynamic membership.
    instance_id: str = ""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise SettingsError("\n".join(problems))

    def kafka_connection(self, stage: str) -> KafkaConnection:
        """How ``stage`` reaches Kafka: mutual TLS as principal ``core.<stage>`` unless kafka_security = PLAINTEXT."""
        if self.kafka_security == "PLAINTEXT":
            return KafkaConnection(self.bootstrap)
        cert, key = self._credentials(stage)
        return KafkaConnection(self.bootstrap, "SSL", ca_file=self.tls_ca_file, cert_file=cert, key_file=key)

    def mqtt_connection(self, stage: str) -> MqttConnection:
        """How ``stage`` (bridge, mirror) reaches Mosquitto: mutual TLS as ``core.<stage>`` unless mqtt_tls = false."""
        if not self.mqtt_tls:
            return MqttConnection(self.mqtt_host, self.mqtt_port)
        cert, key = self._credentials(stage)
        return MqttConnection(
            self.mqtt_host, self.mqtt_port, tls=True, ca_file=self.tls_ca_file, cert_file=cert, key_file=key
        )

    def _credentials(self, stage: str) -> tuple[str, str]:
        folder = Path(self.tls_credentials_dir) / f"core.{stage}"
        return str(folder / "cert.pem"), str(folder / "key.pem")

    @classmethod
    def load(cls, path: Path | None = None, /, **overrides: Any) -> CoreSettings:
        """Defaults < the ``[core]`` table of ``path`` < ``CONSENT_<NAME>`` variables < ``overrides``."""
        values: dict[str, Any] = {}
        if path is not None:
            try:
                values.update(tomllib.loads(path.read_text()).get("core", {}))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
        for f in fields(cls):
            env = os.environ.get(_env(f.name))
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**_typed(values))


def _env(name: str) -> str:
    return f"CONSENT_{name.upper()}"


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f.default for f in fields(CoreSettings)}
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise SettingsError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
        default = known[name]
        if isinstance(default, bool):
            typed[name] = _boolean(name, value)
        elif isinstance(default, tuple):
            typed[name] = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        elif isinstance(default, int):
            try:
                typed[name] = int(value)
            except ValueError as exc:
                raise SettingsError(f"setting {name} must be an integer, got {value!r}") from exc
        else:
            typed[name] = str(value)
    return typed


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"setting {name} must be true or false, got {value!r}")


# --- files named by settings (read at load to validate them, and by the stage that uses them) ----


def read_hex_file(path: str, setting: str) -> bytes:
    """The secret bytes hex-encoded in ``path`` (as ``openssl rand -hex 32`` writes them), mode 0600 only."""
    try:
        return bytes.fromhex(read_secret(path, setting).decode("ascii", "replace"))
    except (SecretFileError, ValueError) as exc:
        raise SettingsError(
            f"setting {setting}={path!r} ({_env(setting)}): cannot read a hex secret from it ({exc}); "
            "point it at a file of mode 0600 holding the value hex-encoded"
        ) from exc


def load_list_sizes(path: str | None) -> dict[str, int]:
    """``practice,list_size`` rows (a header row is skipped) from a CSV file."""
    if not path:
        return {}
    sizes: dict[str, int] = {}
    try:
        with Path(path).open(newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 2 and row[1].strip().isdigit():
                    sizes[row[0].strip()] = int(row[1])
    except OSError as exc:
        raise SettingsError(
            f"setting list_sizes_file={path!r} ({_env('list_sizes_file')}): cannot read list sizes ({exc}); "
            "point it at a practice,list_size CSV file or leave it empty"
        ) from exc
    return sizes


def load_registrations(path: str) -> tuple[Registration, ...]:
    """The registrations CSV named by ``registrations_file`` ("" = none); unreadable = a settings error."""
    if not path:
        return ()
    try:
        return parse_registrations(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RegistrationsError) as exc:
        raise SettingsError(
            f"setting registrations_file={path!r} ({_env('registrations_file')}): "
            f"cannot read registrations file {path}: {exc}; fix the site,patient_key CSV or leave the setting empty"
        ) from exc


# --- validation ---------------------------------------------------------------------------------

Check = Callable[[CoreSettings], str | None]


def _problem(s: CoreSettings, name: str, expected: str) -> str:
    return f"setting {name}={getattr(s, name)!r} ({_env(name)}) is invalid: {expected}"


def _stages(s: CoreSettings) -> str | None:
    unknown = set(s.stages) - set(STAGES)
    if unknown:
        return f"unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}"
    return None


def _ports(s: CoreSettings) -> str | None:
    bad = [
        _problem(s, name, f"expected a TCP port {low}-{_MAX_PORT}{note}")
        for name, low, note in (
            ("http_port", 0, " (0: any free port)"),
            ("metrics_port", 0, " (0: no metrics endpoint)"),
            ("mqtt_port", 1, ""),
        )
        if not low <= getattr(s, name) <= _MAX_PORT
    ]
    return "\n".join(bad) or None


def _required_text(s: CoreSettings) -> str | None:
    bad = [_problem(s, n, "must not be empty") for n in ("bootstrap", "topic_prefix", "app_id") if not getattr(s, n)]
    return "\n".join(bad) or None


def _counts(s: CoreSettings) -> str | None:
    if s.audit_checkpoint_every < 1:
        return _problem(s, "audit_checkpoint_every", "expected a positive number of records between checkpoints")
    if s.gap_timeout_ms < 0:
        return _problem(s, "gap_timeout_ms", "expected milliseconds >= 0")
    if not 0 <= s.commit_interval_ms <= 10_000:
        return _problem(s, "commit_interval_ms", "expected milliseconds between 0 and 10000")
    if s.api_view_cache_entries < 1:
        return _problem(s, "api_view_cache_entries", "expected a positive number of cached patient states")
    return None


def _root_key(s: CoreSettings) -> str | None:
    """The verifier and the bridge (which acks only batches that verify) read agents' keys signed by the root."""
    if not {"verifier", "bridge"} & set(s.stages):
        return None
    todo = "set it to the operator root's raw Ed25519 public key, 64 hex digits"
    stage = "verifier" if "verifier" in s.stages else "bridge"
    if not s.root_public_key_hex:
        return _problem(s, "root_public_key_hex", f"the {stage} stage needs it; {todo}")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(s.root_public_key_hex))
    except ValueError:
        return _problem(s, "root_public_key_hex", f"not a {_ED25519_KEY_BYTES}-byte key in hex; {todo}")
    return None


def _secret(s: CoreSettings) -> str | None:
    """The national pseudonym secret: the api pseudonymises NHS numbers with it, the verifier and the mirror
    translate between sites' pseudonyms and national ones (agents hold only their site's secret)."""
    needing = [stage for stage in ("verifier", "mirror", "api") if stage in s.stages]
    if not needing:
        return None
    todo = (
        "create one with `openssl rand -hex 32` (mode 0600), keep it in the core only and give each site "
        "`consent-broker keys site-secret --site ODS`"
    )
    if not s.pseudonym_secret_file:
        return _problem(s, "pseudonym_secret_file", f"the {needing[0]} stage needs it; {todo}")
    try:
        secret = read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file")
    except SettingsError as exc:
        return exc.message
    if len(secret) < MIN_SECRET_BYTES:
        return _problem(s, "pseudonym_secret_file", f"holds {len(secret)} bytes, need {MIN_SECRET_BYTES}+; {todo}")
    return None


def _audit_key(s: CoreSettings) -> str | None:
    if "api" not in s.stages:
        return None
    if not s.audit_key_file:
        todo = "create one with `consent-broker audit keygen --out FILE` (mode 0600) and keep it"
        return _problem(s, "audit_key_file", f"the api stage signs the audit log with it; {todo}")
    try:
        Ed25519PrivateKey.from_private_bytes(read_hex_file(s.audit_key_file, "audit_key_file"))
    except SettingsError as exc:
        return exc.message
    except ValueError:
        return _problem(s, "audit_key_file", f"expected a file holding a raw {_ED25519_KEY_BYTES}-byte key in hex")
    return _audit_witnesses(s)


AUDIT_ANSWER_AFTER = ("request", "append")


def _audit_answer(s: CoreSettings) -> str | None:
    if s.audit_answer_after not in AUDIT_ANSWER_AFTER:
        return _problem(s, "audit_answer_after", f"choose one of {', '.join(AUDIT_ANSWER_AFTER)}")
    return None


def _audit_witnesses(s: CoreSettings) -> str | None:
    if s.insecure_unwitnessed_audit:
        return None
    for w in s.audit_witnesses:
        url, _, vkey = w.strip().partition(" ")
        if not url.startswith(("https://", "http://")) or vkey.count("+") < 2:
            return _problem(s, "audit_witnesses", f"entry {w!r} is not '<https URL> <witness verifier key>'")
    if not 1 <= s.audit_witness_quorum <= len(s.audit_witnesses):
        return _problem(
            s,
            "audit_witness_quorum",
            f"needs between 1 and the {len(s.audit_witnesses)} configured audit_witnesses "
            "(run `consent-broker witness` and list it), or insecure_unwitnessed_audit for debugging",
        )
    return None


def audit_origin(s: CoreSettings) -> str:
    """The audit log's origin line (and its key's name)."""
    return s.audit_origin or f"{s.app_id}/{s.topic_prefix}.audit"


def load_decision_policy(path: str) -> DecisionPolicy:
    """The deployment's decision policy (consent_rules.decision.policy_doc); the defaults when ``path`` is empty."""
    if not path:
        return DEFAULT_POLICY
    try:
        with Path(path).open("rb") as f:
            return parse_policy(tomllib.load(f))
    except (OSError, tomllib.TOMLDecodeError, PolicyDocumentError) as exc:
        raise SettingsError(
            f"setting decision_policy_file={path!r} ({_env('decision_policy_file')}): {exc}; "
            "see deploy/decision-policy.toml for the format, or leave it empty for the defaults"
        ) from exc


def _decision_policy(s: CoreSettings) -> str | None:
    if "api" not in s.stages:
        return None
    try:
        load_decision_policy(s.decision_policy_file)
    except SettingsError as exc:
        return exc.message
    return None


def _list_sizes(s: CoreSettings) -> str | None:
    if "api" not in s.stages:
        return None
    try:
        load_list_sizes(s.list_sizes_file)
    except SettingsError as exc:
        return exc.message
    return None


def _mirror_files(s: CoreSettings) -> str | None:
    if "mirror" not in s.stages:
        return None
    try:
        registrations = load_registrations(s.registrations_file)
        if registrations and s.pseudonym_secret_file:  # each line names the site's own pseudonym
            secret = read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file")
            if len(secret) >= MIN_SECRET_BYTES:
                MirrorPlanner(registrations, CorePseudonyms(secret))
    except SettingsError as exc:
        return exc.message
    except RegistrationsError as exc:
        return _problem(s, "registrations_file", str(exc))
    return None


# stages that sign what they send to agents with core_signing_key_file: the bridge its acks, the mirror every
# replica record; agents verify both with the public half (core_public_key_hex)
_CORE_KEY_STAGES = frozenset({"bridge", "mirror"})


def _core_signing_key(s: CoreSettings) -> str | None:
    signers = sorted(_CORE_KEY_STAGES & set(s.stages))
    if not signers:
        return None
    todo = "a file of mode 0600 with a raw 32-byte Ed25519 private key in hex; agents get its public key"
    if not s.core_signing_key_file:
        what = " and ".join(signers)
        return _problem(s, "core_signing_key_file", f"the {what} stage signs what it sends agents with it: {todo}")
    try:
        Ed25519PrivateKey.from_private_bytes(read_hex_file(s.core_signing_key_file, "core_signing_key_file"))
    except SettingsError as exc:
        return exc.message
    except ValueError:
        return _problem(s, "core_signing_key_file", f"not a {_ED25519_KEY_BYTES}-byte key; {todo}")
    if s.site_feed_replication < 1:
        return _problem(s, "site_feed_replication", "expected a replication factor >= 1")
    return None


def _transport_tls(s: CoreSettings) -> str | None:
    """Mutual TLS to Kafka (and to Mosquitto for bridge and mirror): the CA and each stage's certificate."""
    problems: list[str] = []
    if s.kafka_security not in ("SSL", "PLAINTEXT"):
        problems.append(_problem(s, "kafka_security", '"SSL" (mutual TLS) or "PLAINTEXT" (debugging only)'))
    mqtt_stages = {"bridge", "mirror"} & set(s.stages)
    if not s.stages or (s.kafka_security != "SSL" and not (s.mqtt_tls and mqtt_stages)):
        return "\n".join(problems) or None
    if not s.tls_ca_file or not Path(s.tls_ca_file).is_file():
        problems.append(_problem(s, "tls_ca_file", "the deployment CA certificate (PEM); `consent-broker infra up`"))
    if not s.tls_credentials_dir:
        problems.append(_problem(s, "tls_credentials_dir", "a folder with core.<stage>/cert.pem and key.pem"))
        return "\n".join(problems)
    for stage in s.stages:
        cert, key = s._credentials(stage)
        if not Path(cert).is_file() or not Path(key).is_file():
            problems.append(_problem(s, "tls_credentials_dir", f"no certificate and key for principal core.{stage}"))
            continue
        try:
            check_secret_mode(Path(key), f"core.{stage} private key")
        except SecretFileError as exc:
            problems.append(_problem(s, "tls_credentials_dir", str(exc)))
    return "\n".join(problems) or None


def _api_door(s: CoreSettings) -> str | None:
    """The api stage serves HTTPS with authenticated clients unless insecure_http is set."""
    if "api" not in s.stages or s.insecure_http:
        return None
    problems: list[str] = []
    if not s.api_clients_file:
        problems.append(_problem(s, "api_clients_file", "the api stage needs its client registry (or insecure_http)"))
    else:
        try:
            ClientRegistry.load(Path(s.api_clients_file))
        except RegistryError as exc:
            problems.append(_problem(s, "api_clients_file", str(exc)))
    if not s.api_token_key_file:
        problems.append(_problem(s, "api_token_key_file", "the api stage needs a token signing key: 64 hex digits"))
    else:
        try:
            Ed25519PrivateKey.from_private_bytes(read_hex_file(s.api_token_key_file, "api_token_key_file"))
        except SettingsError as exc:
            problems.append(exc.message)
        except ValueError:
            problems.append(_problem(s, "api_token_key_file", "expected a raw 32-byte Ed25519 key in hex"))
    for name in ("http_tls_cert_file", "http_tls_key_file"):
        if not getattr(s, name):
            problems.append(_problem(s, name, "the api stage serves HTTPS: name the PEM file (or insecure_http)"))
        elif not Path(getattr(s, name)).is_file():
            problems.append(_problem(s, name, "no such file"))
    if s.http_tls_key_file and Path(s.http_tls_key_file).is_file():
        try:
            check_secret_mode(Path(s.http_tls_key_file), "http_tls_key_file")
        except SecretFileError as exc:
            problems.append(_problem(s, "http_tls_key_file", str(exc)))
    return "\n".join(problems) or None


_CHECKS: tuple[Check, ...] = (
    _stages,
    _ports,
    _required_text,
    _counts,
    _root_key,
    _secret,
    _audit_key,
    _audit_answer,
    _core_signing_key,
    _list_sizes,
    _decision_policy,
    _mirror_files,
    _api_door,
    _transport_tls,
)


def _problems(s: CoreSettings) -> list[str]:
    return [p for check in _CHECKS if (p := check(s)) is not None]
