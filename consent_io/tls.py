"""TLS for Kafka and MQTT clients from the typed connection settings (mTLS: one X.509 client certificate each).

The product's client factories call :func:`kafka_security_kwargs` and :func:`mqtt_tls_context`; both refuse a
private key file that the group or others can read (:func:`check_key_file_mode`), before any connection.

Error tree::

    TlsConfigError (reason TLS_CONFIG)
     +-- KeyFileModeError (reason KEY_FILE_MODE)
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509

from consent_io.connection import KafkaConnection, MqttConnection
from consent_io.secrets import SecretFileError, check_secret_mode

__all__ = [
    "KeyFileModeError",
    "TlsConfigError",
    "certificate_not_after",
    "check_key_file_mode",
    "client_ssl_context",
    "kafka_security_kwargs",
    "mqtt_tls_context",
]


class TlsConfigError(Exception):
    """TLS settings are incomplete or point at unusable files."""

    reason: ClassVar[str] = "TLS_CONFIG"
    retriable: ClassVar[bool] = False


class KeyFileModeError(TlsConfigError):
    """A private key file is readable by its group or by others."""

    reason: ClassVar[str] = "KEY_FILE_MODE"


def check_key_file_mode(path: str | Path) -> None:
    """Refuse a key file any group or other user may read, write or execute (OpenSSH's rule for keys)."""
    try:
        check_secret_mode(Path(path), "private key")
    except SecretFileError as exc:
        kind = KeyFileModeError if "accessible by group or others" in str(exc) else TlsConfigError
        raise kind(str(exc)) from exc


def client_ssl_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS client context that checks the server against ``ca_file`` and presents ``cert_file``."""
    missing = [
        name for name, value in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)) if not value
    ]
    if missing:
        raise TlsConfigError(f"TLS needs {', '.join(missing)} (mutual TLS: every client presents a certificate)")
    check_key_file_mode(key_file)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load client certificate {cert_file} with key {key_file}: {exc}") from exc
    return context


def kafka_security_kwargs(conn: KafkaConnection) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin) built from ``conn``."""
    kwargs: dict[str, Any] = {"bootstrap_servers": conn.bootstrap}
    if conn.security_protocol == "SSL":
        kwargs["security_protocol"] = "SSL"
        kwargs["ssl_context"] = client_ssl_context(conn.ca_file, conn.cert_file, conn.key_file)
    return kwargs


def mqtt_tls_context(conn: MqttConnection) -> ssl.SSLContext | None:
    """The ``tls_context`` for an MQTT client (aiomqtt ``Client(tls_context=...)``), or None in plaintext."""
    if not conn.tls:
        return None
    return client_ssl_context(conn.ca_file, conn.cert_file, conn.key_file)


def certificate_not_after(path: str | Path) -> float:
    """The ``notAfter`` of the first certificate in the PEM file ``path``, as Unix seconds (for expiry alerts)."""
    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return cert.not_valid_after_utc.timestamp()
