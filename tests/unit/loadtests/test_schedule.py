"""Send schedules: every batch once, each agent's order kept, offline agents flush on reconnection."""

from __future__ import annotations

import dataclasses

from loadtests.plan import quick_plan
from loadtests.schedule import blast_schedule, paced_schedule
from loadtests.synth import SynthFleet, build_fleet

AT_MS = 1_790_000_000_000


def _fleet(events: int) -> SynthFleet:
    plan = quick_plan()
    small = tuple(dataclasses.replace(k, count=4, batch_events=20) for k in plan.fleet)
    return build_fleet(dataclasses.replace(plan, fleet=small), "t", events, AT_MS)


def _per_agent_order(sends: list, agents: int) -> dict[int, list[int]]:  # type: ignore[type-arg]
    order: dict[int, list[int]] = {i: [] for i in range(agents)}
    for s in sends:
        order[s.agent].append(s.batch)
    return order


def test_blast_sends_every_batch_once_in_agent_order() -> None:
    fleet = _fleet(600)
    sends = blast_schedule(fleet)
    order = _per_agent_order(sends, len(fleet.agents))
    assert {i: b for i, b in order.items()} == {i: list(range(len(a.batches))) for i, a in enumerate(fleet.agents)}
    assert all(s.at_s == 0.0 and not s.held for s in sends)


def test_paced_schedule_keeps_order_and_spreads_over_the_duration() -> None:
    fleet = _fleet(1200)
    sends = paced_schedule(fleet, rate_eps=400.0, duration_s=3.0, offline_s=1.0)
    order = _per_agent_order(sends, len(fleet.agents))
    assert order == {i: list(range(len(a.batches))) for i, a in enumerate(fleet.agents)}
    assert [s.at_s for s in sends] == sorted(s.at_s for s in sends)
    assert 1.5 < sends[-1].at_s < 5.0  # 1200 events at 400/s take about 3 s (bursts and phase shift it)


def test_offline_agents_hold_their_batches_until_reconnection() -> None:
    fleet = _fleet(1200)
    sends = paced_schedule(fleet, rate_eps=400.0, duration_s=3.0, offline_s=1.0)
    held = [s for s in sends if s.held]
    assert held, "the quick plan has offline agents"
    assert all(fleet.agents[s.agent].offline for s in held)
    for agent in {s.agent for s in held}:
        times = {s.at_s for s in held if s.agent == agent}
        assert len(times) == 1  # the whole backlog goes at the reconnection instant
