"""consent_io.mqtt: clients honour the connection's security fields; manual acks go through paho's internals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest

from consent_io import mqtt
from consent_io.connection import MqttConnection


async def test_a_plain_client_has_no_credentials_no_tls_and_paho_acks_automatically() -> None:
    client = mqtt.client(MqttConnection("127.0.0.1", 1883), identifier="bridge-1", clean_session=False)
    assert isinstance(client._client, paho.Client)
    assert client._client._client_id == b"bridge-1"
    assert (client._client._username, client._client._password) == (None, None)
    assert client._client._ssl is False
    assert client._client._manual_ack is False


async def test_username_and_the_password_from_its_file_are_sent(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\n")
    client = mqtt.client(MqttConnection("127.0.0.1", 1883, username="gw-7", password_file=str(secret)))
    assert (client._client._username, client._client._password) == (b"gw-7", b"s3cret")


async def test_an_unreadable_password_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(mqtt.PasswordFileError, match=str(missing)):
        mqtt.client(MqttConnection("127.0.0.1", 1883, username="gw-7", password_file=str(missing)))


async def test_tls_uses_the_ca_file(tmp_path: Path) -> None:
    from tests.unit.io.test_kafka_adapter import _self_signed

    cert_file, key_file = _self_signed(tmp_path)
    conn = MqttConnection(
        "broker", 8883, tls=True, ca_file=str(cert_file), cert_file=str(cert_file), key_file=str(key_file)
    )
    client = mqtt.client(conn)
    assert client._client._ssl is True
    context = client._client._ssl_context
    assert context is not None
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "consent-test"),),)


async def test_manual_ack_switches_paho_to_manual_acks() -> None:
    client = mqtt.client(MqttConnection("127.0.0.1", 1883), manual_ack=True)
    assert client._client._manual_ack is True


class _Message:
    def __init__(self, qos: int, mid: int) -> None:
        self.qos, self.mid = qos, mid


@pytest.mark.parametrize(("qos", "expected"), [(1, [(7, 1)]), (2, [(7, 2)]), (0, [])])
async def test_ack_sends_the_puback_of_a_qos_1_or_2_message_only(
    monkeypatch: pytest.MonkeyPatch, qos: int, expected: list[tuple[int, int]]
) -> None:
    client = mqtt.client(MqttConnection("127.0.0.1", 1883), manual_ack=True)
    sent: list[tuple[int, int]] = []

    def ack(mid: int, q: int) -> Any:
        sent.append((mid, q))
        return paho.MQTT_ERR_SUCCESS

    assert callable(client._client.ack)  # the paho method mqtt.ack relies on
    monkeypatch.setattr(client._client, "ack", ack)
    mqtt.ack(client, _Message(qos, 7))  # type: ignore[arg-type]
    assert sent == expected


async def test_aiomqtt_clients_satisfy_the_mqtt_link_protocol() -> None:
    link: mqtt.MqttLink = mqtt.client(MqttConnection("127.0.0.1", 1883))
    assert isinstance(link, aiomqtt.Client)
