"""When each synthetic batch is sent: offered rate, on-off bursts and offline periods (pure, no clock)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadtests.synth import SynthFleet

__all__ = ["Send", "blast_schedule", "paced_schedule"]

BURST_CYCLE_S = 1.0  # one on-off cycle per second: bursts of 1/burst_factor s at burst_factor x the mean rate


@dataclass(frozen=True, slots=True)
class Send:
    at_s: float  # seconds after the run starts
    agent: int  # index into fleet.agents
    batch: int  # index into that agent's batches
    held: bool  # sent late because the agent was offline (latency counts from reconnection)


def blast_schedule(fleet: SynthFleet) -> list[Send]:
    """Everything at once, batches interleaved round-robin across agents (each agent's order kept)."""
    sends: list[Send] = []
    longest = max((len(a.batches) for a in fleet.agents), default=0)
    for j in range(longest):
        for i, agent in enumerate(fleet.agents):
            if j < len(agent.batches):
                sends.append(Send(0.0, i, j, False))
    return sends


def _wall_time(active_s: float, burst_factor: float, phase_s: float) -> float:
    """Map time spent 'on' to wall time in on-off cycles of BURST_CYCLE_S."""
    on_len = BURST_CYCLE_S / max(1.0, burst_factor)
    cycles, within = divmod(active_s, on_len)
    return phase_s + cycles * BURST_CYCLE_S + within


def paced_schedule(
    fleet: SynthFleet, rate_eps: float, duration_s: float, offline_s: float, seed: int = 11
) -> list[Send]:
    """Each agent carries its kind's share of ``rate_eps``; offline agents hold their batches, then flush."""
    rng = random.Random(seed)
    sends: list[Send] = []
    for i, agent in enumerate(fleet.agents):
        spec = agent.spec
        members = sum(1 for a in fleet.agents if a.spec is spec)
        agent_rate = rate_eps * spec.share / max(1, members)
        burst_rate = agent_rate * max(1.0, spec.burst_factor)
        phase = rng.uniform(0.0, BURST_CYCLE_S)
        off_from = rng.uniform(0.1, max(0.1, duration_s - offline_s)) if agent.offline else -1.0
        off_to = off_from + offline_s
        done = 0
        for j, batch in enumerate(agent.batches):
            done += batch.count
            at = _wall_time(done / burst_rate, spec.burst_factor, phase) if burst_rate > 0 else 0.0
            held = agent.offline and off_from <= at < off_to
            sends.append(Send(off_to if held else at, i, j, held))
    sends.sort(key=lambda s: (s.at_s, s.agent, s.batch))
    return sends
