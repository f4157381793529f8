"""The process's event loop: uvloop, with TLS connections that close without waiting 30 s for the peer.

uvloop waits up to ``ssl_shutdown_timeout`` (default 30 s) for the peer's TLS close_notify when a connection
closes, and Kafka's brokers often never send one: every ``AIOKafkaConsumer.stop()`` over mutual TLS then
sometimes took exactly 30 s (MagicStack/uvloop#471, measured here on the restore readers of the stages: one
30 s stall per restored partition, which made a secure core take minutes to be ready and its group churn).
aiokafka opens its connections with ``loop.create_connection`` and cannot pass the timeout, so the loop
gives every TLS connection a short one by default. Closing is then bounded; nothing sent is lost (Kafka's
protocol is request/response: a connection is closed only when no request is in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

__all__ = ["SSL_SHUTDOWN_TIMEOUT_S", "new_loop", "run"]

T = TypeVar("T")

SSL_SHUTDOWN_TIMEOUT_S = 2.0  # a close_notify round trip on loopback or a LAN takes milliseconds


class _Loop(uvloop.Loop):
    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None and kwargs.get("ssl_shutdown_timeout") is None:
            kwargs["ssl_shutdown_timeout"] = SSL_SHUTDOWN_TIMEOUT_S
        return await super().create_connection(*args, **kwargs)


def new_loop() -> asyncio.AbstractEventLoop:
    return _Loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on the product's loop (entry points only: one loop per process)."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(coro)
