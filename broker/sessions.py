"""Reconnecting sessions for the core's long-lived MQTT services (bridge, mirror).

``supervise`` runs a session coroutine until ``stop`` is set; when the session ends (an MQTT or
Kafka error, a broker restart) it waits a full-jitter backoff and starts a new one. A session
never outlives its supervisor: cancelling ``supervise`` cancels the session and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import aiomqtt
from aiokafka.errors import KafkaError

from consent_rules.backoff import full_jitter_delay

__all__ = ["backoff_delay", "supervise"]

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """The edge agent's full-jitter schedule, so agents and core back off alike after an outage."""
    return full_jitter_delay(attempt, base_s=base_s, cap_s=cap_s, unit_random=random.random())


async def supervise(
    name: str,
    session: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    base_s: float,
    cap_s: float,
    on_down: Callable[[], None],
) -> None:
    """Run ``session`` again and again (with backoff after each end) until ``stop`` is set."""
    attempt = 0
    while not stop.is_set():
        task = asyncio.ensure_future(session())
        stopper = asyncio.create_task(stop.wait(), name=f"{name}-stop")
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the supervisor is cancelled: the session must not outlive it
            stopper.cancel()
            if not task.done():
                await _cancel(name, task)
        if stop.is_set():
            return
        error = None if task.cancelled() else task.exception()
        on_down()
        delay = backoff_delay(attempt, base_s, cap_s)
        log.warning("%s session ended error=%r retry_in_s=%.2f", name, error, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        attempt = attempt + 1 if error is not None else 0


async def _cancel(name: str, task: asyncio.Future[None]) -> None:
    """Cancel ``task`` and wait for it; whatever it raises while unwinding is logged, not propagated."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except (aiomqtt.MqttError, KafkaError, OSError) as exc:
        log.info("%s session ended while stopping error=%r", name, exc)
