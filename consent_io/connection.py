"""Typed connection settings for Kafka and MQTT clients (pure data, no I/O at import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["KafkaConnection", "MqttConnection"]


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where and how to reach Kafka. Security fields are filled by the trust work (issue 11)."""

    bootstrap: str
    security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    ca_file: str = ""  # PEM bundle of the CA that signed the brokers' certificates
    cert_file: str = ""  # this principal's certificate chain (PEM)
    key_file: str = ""  # this principal's private key (PEM, mode 0600)


@dataclass(frozen=True, slots=True)
class MqttConnection:
    """Where and how to reach the MQTT broker. Security fields are filled by the trust work (issue 11)."""

    host: str
    port: int
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""  # password read from a file of mode 0600; never from the environment
