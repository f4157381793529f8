"""The MQTT adapter: every aiomqtt client is built here, from one :class:`MqttConnection`.

:func:`client` honours the connection's security fields (a TLS context from ``ca_file``/``cert_file``/``key_file``;
``username`` with the password read from ``password_file``). With ``manual_ack=True`` the broker gets
the PUBACK of a QoS>0 message only when :func:`ack` is called (aiomqtt has no option for it: this
module switches paho's manual acks on, the only private-attribute access to aiomqtt, tested in
``tests/unit/io``).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, Protocol

import aiomqtt

from consent_io.connection import MqttConnection
from consent_io.tls import mqtt_tls_context

__all__ = ["MqttLink", "ack", "client", "session_present"]

# client -> the CONNACK "session present" flag of its last connection (see session_present)
_SESSIONS: weakref.WeakKeyDictionary[aiomqtt.Client, bool] = weakref.WeakKeyDictionary()


class MqttLink(Protocol):
    """What a service needs of an MQTT session: publish and subscribe (the rest is aiomqtt's)."""

    async def publish(
        self,
        topic: str,
        payload: bytes | None = None,
        qos: int = 0,
        retain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - aiomqtt's own signature (the PUBACK wait)
    ) -> None: ...

    async def subscribe(self, topic: str, qos: int = 0) -> Any: ...


class PasswordFileError(Exception):
    """The MQTT password file cannot be read."""

    reason = "BAD_PASSWORD_FILE"
    retriable = False


def _password(conn: MqttConnection) -> str | None:
    if not conn.password_file:
        return None
    try:
        return Path(conn.password_file).read_text().strip()
    except OSError as exc:
        raise PasswordFileError(f"cannot read the MQTT password from {conn.password_file}: {exc}") from exc


def client(
    conn: MqttConnection,
    *,
    identifier: str | None = None,
    clean_session: bool | None = None,
    timeout: float | None = None,
    manual_ack: bool = False,
    **opts: Any,
) -> aiomqtt.Client:
    """A client (connects on ``async with``); ``opts`` are aiomqtt's (keepalive, will, ...)."""
    built = aiomqtt.Client(
        conn.host,
        conn.port,
        identifier=identifier,
        clean_session=clean_session,
        timeout=timeout,
        username=conn.username or None,
        password=_password(conn),
        tls_context=mqtt_tls_context(conn),
        **opts,
    )
    if manual_ack:
        built._client.manual_ack_set(True)  # private: paho client; see tests/unit/io
    _remember_session(built)
    return built


def _remember_session(built: aiomqtt.Client) -> None:
    """Record CONNACK's session-present flag (aiomqtt drops it): wraps paho's on_connect (private, as above)."""
    paho = built._client
    original: Any = paho.on_connect

    def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        _SESSIONS[built] = bool(getattr(flags, "session_present", False))
        original(client, userdata, flags, reason_code, properties)

    paho.on_connect = on_connect


def session_present(built: aiomqtt.Client) -> bool:
    """Whether the broker kept this (``clean_session=False``) client's session on its last connection: its
    subscriptions stand, and messages published meanwhile are queued for it (retained ones are not re-sent)."""
    return _SESSIONS.get(built, False)


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Send the PUBACK of a QoS>0 message received on a ``manual_ack`` client."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)  # private: paho client; see tests/unit/io
