"""deploy/docker-compose.yml: valid under the compose-spec JSON schema (the one docker compose validates with,
from the Go module compose-go: tools/install-compose-schema.sh; no Docker CLI or engine here), and the same
secure configuration as `consent-broker infra`: Kafka's TLS settings equal broker/infra/kafka.py's, Mosquitto
takes client certificates only, with the ACL file generated from broker/infra/acls.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from broker.infra.acls import default_principals, super_users
from broker.infra.kafka import KafkaTls
from tests.tools import ROOT, tool_path

COMPOSE = ROOT / "deploy" / "docker-compose.yml"
MOSQUITTO = ROOT / "deploy" / "compose"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(tool_path("compose-schema", "compose-spec.json").read_text())
    return schema


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_compose_file_is_valid_under_the_compose_spec_schema() -> None:
    jsonschema.validate(_compose(), _schema())


def test_the_schema_catches_a_misspelt_service_key() -> None:
    broken = _compose()
    broken["services"]["kafka"]["enviroment"] = broken["services"]["kafka"].pop("environment")
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        jsonschema.validate(broken, _schema())


def test_kafka_has_the_same_tls_and_authorizer_settings_as_infra() -> None:
    env = {k: str(v) for k, v in _compose()["services"]["kafka"]["environment"].items()}
    expected = KafkaTls(Path("ca"), Path("keystore"), super_users(default_principals())).properties()
    for key, value in expected.items():
        name = "KAFKA_" + key.upper().replace(".", "_")
        if key.endswith(".location"):
            assert env[name].startswith("/etc/kafka/tls/"), name
            continue
        assert env[name].replace("$$", "$") == value, name  # "$$" is compose's escape for a literal "$"
    assert "PLAINTEXT" not in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert all(listener.startswith(("SSL://", "CONTROLLER://")) for listener in env["KAFKA_LISTENERS"].split(","))


def test_mosquitto_takes_client_certificates_only_with_the_generated_acls() -> None:
    conf = (MOSQUITTO / "mosquitto.conf").read_text().splitlines()
    for line in ("require_certificate true", "use_identity_as_username true", "allow_anonymous false",
                 "acl_file /mosquitto/config/mosquitto.acl"):  # fmt: skip
        assert line in conf
    assert not any(line.startswith("listener 1883") for line in conf)
    mounts = _compose()["services"]["mosquitto"]["volumes"]
    assert "./compose/mosquitto.acl:/mosquitto/config/mosquitto.acl:ro" in mounts
