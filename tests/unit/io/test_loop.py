"""The product's loop bounds a TLS close: uvloop's 30 s wait for the peer's close_notify stalled every restore."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import uvloop

from consent_io import loop


def test_tls_connections_get_a_short_shutdown_timeout_and_plain_ones_are_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []

    async def fake(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    monkeypatch.setattr(uvloop.Loop, "create_connection", fake)  # the library method the product's loop wraps
    context = ssl.create_default_context()

    async def connect() -> None:
        running = loop.new_loop()
        assert isinstance(running, uvloop.Loop)
        await type(running).create_connection(running, asyncio.Protocol, "h", 1, ssl=context)
        await type(running).create_connection(running, asyncio.Protocol, "h", 1)
        await type(running).create_connection(running, asyncio.Protocol, "h", 1, ssl=context, ssl_shutdown_timeout=9.0)
        running.close()

    loop.run(connect())
    assert [k.get("ssl_shutdown_timeout") for k in seen] == [loop.SSL_SHUTDOWN_TIMEOUT_S, None, 9.0]


def test_the_entry_points_run_on_uvloop() -> None:
    async def which() -> str:
        import asyncio

        return type(asyncio.get_running_loop()).__module__

    assert loop.run(which()) == "consent_io.loop"
