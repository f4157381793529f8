"""Secure-mode configuration of Kafka, Mosquitto and clients (no broker started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.infra import Infra, InfraConfig, kafka
from broker.infra.pki import Pki
from consent_io.connection import KafkaConnection, MqttConnection
from consent_io.tls import KeyFileModeError, TlsConfigError, kafka_security_kwargs, mqtt_tls_context


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_secure_mode_is_on_by_default_and_plaintext_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert InfraConfig().secure is True
    monkeypatch.delenv("CONSENT_INFRA_SECURE", raising=False)
    assert InfraConfig.from_env().secure is True
    monkeypatch.setenv("CONSENT_INFRA_SECURE", "0")
    assert InfraConfig.from_env().secure is False


def test_a_secure_kafka_node_has_only_ssl_listeners_and_the_authorizer(tmp_path: Path) -> None:
    node = kafka.node_layout(tmp_path, 30000, 1)[0]
    tls = kafka.KafkaTls(tmp_path / "ca.pem", tmp_path / "keystore.pem", "User:operator;User:broker")
    props = _props(node.properties("127.0.0.1:30001", 1, tls))
    assert props["listeners"] == "SSL://127.0.0.1:30000,CONTROLLER://127.0.0.1:30001"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,SSL:SSL"
    assert props["inter.broker.listener.name"] == "SSL"
    assert props["ssl.client.auth"] == "required"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str(tmp_path / "keystore.pem")
    assert props["ssl.truststore.location"] == str(tmp_path / "ca.pem")
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:operator;User:broker"
    assert props["ssl.principal.mapping.rules"] == "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
    assert "PLAINTEXT" not in node.properties("127.0.0.1:30001", 1, tls)


def test_an_insecure_kafka_node_is_plaintext(tmp_path: Path) -> None:
    props = _props(kafka.node_layout(tmp_path, 30000, 1)[0].properties("127.0.0.1:30001", 1))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:30000,CONTROLLER://127.0.0.1:30001"
    assert "authorizer.class.name" not in props


def test_secure_mosquitto_requires_client_certificates(tmp_path: Path) -> None:
    stack = Infra(InfraConfig(cache_dir=tmp_path, secure=True))
    assert stack.mqtt.tls is not None
    config = stack.mqtt.tls.config()
    for line in ("require_certificate true", "use_identity_as_username true", "allow_anonymous false"):
        assert line in config.splitlines()
    assert f"acl_file {stack.config.root / 'mosquitto' / 'acl'}" in config


def test_a_plaintext_connection_has_no_tls() -> None:
    assert kafka_security_kwargs(KafkaConnection("127.0.0.1:9092")) == {"bootstrap_servers": "127.0.0.1:9092"}
    assert mqtt_tls_context(MqttConnection("127.0.0.1", 1883)) is None


def test_an_ssl_connection_needs_every_file() -> None:
    with pytest.raises(TlsConfigError, match="cert_file, key_file"):
        kafka_security_kwargs(KafkaConnection("127.0.0.1:9092", "SSL", ca_file="ca.pem"))


def test_a_client_refuses_a_readable_key_before_connecting(tmp_path: Path) -> None:
    files = Pki(tmp_path).issue("core.api")
    conn = MqttConnection(
        "127.0.0.1",
        8883,
        tls=True,
        ca_file=str(files.ca_file),
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
    )
    assert mqtt_tls_context(conn) is not None
    files.key_file.chmod(0o640)
    with pytest.raises(KeyFileModeError, match="0o640"):
        mqtt_tls_context(conn)


def test_infra_up_offers_secure_and_insecure() -> None:
    from click.testing import CliRunner

    from broker.cli import cli

    result = CliRunner().invoke(cli, ["infra", "up", "--help"])
    assert result.exit_code == 0
    assert "--secure / --insecure" in result.output


def test_the_environment_turns_secure_mode_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_INFRA_SECURE", "1")
    assert InfraConfig.from_env().secure is True
    assert InfraConfig.from_env(secure=False).secure is False


def test_mosquitto_without_tls_needs_the_explicit_debug_flag(tmp_path: Path) -> None:
    """Secure by default: anonymous plaintext MQTT only behind infra up --insecure (insecure_debug)."""
    from broker.infra.errors import InfraError
    from broker.infra.mosquitto import MosquittoService

    with pytest.raises(InfraError, match="explicit debug flag"):
        MosquittoService(tmp_path, 21883, None)
    assert MosquittoService(tmp_path, 21883, None, insecure_debug=True).tls is None


def test_anonymous_mqtt_is_allowed_only_by_the_explicit_debug_flag() -> None:
    from broker.infra.mosquitto import debug_anonymous

    assert debug_anonymous(False) == "allow_anonymous false"
    assert debug_anonymous(True).endswith(" true")
