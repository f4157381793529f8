"""One typed settings object for a core process, from a TOML file and CONSENT_* environment variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from consent_io.connection import KafkaConnection, MqttConnection

__all__ = ["STAGES", "CoreSettings", "SettingsError"]

STAGES = ("verifier", "reconciler", "bridge", "api", "mirror")


class SettingsError(Exception):
    reason = "BAD_SETTINGS"


@dataclass(frozen=True, slots=True)
class CoreSettings:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "consent"
    app_id: str = "consent-core"  # consumer group and transactional id prefix
    stages: tuple[str, ...] = ("verifier", "reconciler")
    root_public_key_hex: str = ""  # the operator root key that signs agent key events
    pseudonym_secret_file: str = ""  # HMAC key for patient pseudonyms (API requests carry NHS numbers)
    metrics_port: int = 0  # 0 = no metrics endpoint
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    gap_timeout_ms: int = 30_000
    audit_key_file: str = ""  # hex of a raw Ed25519 private key signing audit checkpoints; "" = per-run key
    audit_checkpoint_every: int = 1000  # records between signed audit checkpoints
    list_sizes_file: str = ""  # CSV practice,list_size for the objection-rate report
    registrations_file: str = ""  # CSV site,patient_key: sites the mirror serves besides those seen in events

    def kafka_connection(self) -> KafkaConnection:
        """How this process reaches Kafka (security settings arrive with issue 11)."""
        return KafkaConnection(self.bootstrap)

    def mqtt_connection(self) -> MqttConnection:
        """How this process reaches the MQTT broker (security settings arrive with issue 11)."""
        return MqttConnection(self.mqtt_host, self.mqtt_port)

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> CoreSettings:
        values: dict[str, Any] = {}
        if path is not None:
            try:
                values.update(tomllib.loads(path.read_text()).get("core", {}))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
        for f in fields(cls):
            env = os.environ.get(f"CONSENT_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls()._with(values)

    def _with(self, values: dict[str, Any]) -> CoreSettings:
        known = {f.name: f for f in fields(self)}
        typed: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            default = getattr(self, name)
            if isinstance(default, tuple):
                typed[name] = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
            elif isinstance(default, int):
                try:
                    typed[name] = int(value)
                except ValueError as exc:
                    raise SettingsError(f"setting {name} must be an integer, got {value!r}") from exc
            else:
                typed[name] = str(value)
        result = replace(self, **typed)
        unknown = set(result.stages) - set(STAGES)
        if unknown:
            raise SettingsError(f"unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
        return result
