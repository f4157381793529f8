"""A core task that dies stops the whole core (so its supervisor restarts it) instead of limping on."""

from __future__ import annotations

import asyncio

from broker.runtime import Core
from broker.settings import CoreSettings


async def _boom() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("stage lost its mind")


async def _idle(stop: asyncio.Event) -> None:
    await stop.wait()


async def test_a_failed_task_stops_the_core_and_is_reported() -> None:
    core = Core(CoreSettings(stages=()))
    healthy = asyncio.create_task(_idle(core.stop_event), name="healthy")
    failing = asyncio.create_task(_boom(), name="failing")
    for task in (healthy, failing):
        core._tasks.append(task)
        task.add_done_callback(core._watch)
    await asyncio.wait_for(core.stop_event.wait(), timeout=5)
    await core.stop()
    assert isinstance(core.failure, RuntimeError)
    assert healthy.done() and not healthy.cancelled()


async def test_tasks_ending_during_a_requested_stop_are_not_failures() -> None:
    core = Core(CoreSettings(stages=()))
    task = asyncio.create_task(_idle(core.stop_event), name="idle")
    core._tasks.append(task)
    task.add_done_callback(core._watch)
    await core.stop()
    assert core.failure is None
