"""The load-test harness end to end on the test stack, at toy volume: counts add up, nothing lost or doubled."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker.infra import Infra
from consent_wire.keys import OperatorRoot
from loadtests.drive import BenchContext, RunSpec, measured_run
from loadtests.plan import Layout, quick_plan
from loadtests.progress import Progress
from loadtests.realfleet import RealFleet
from loadtests.stack import BenchStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ctx(infra: Infra, tmp_path: Path) -> BenchContext:
    plan = dataclasses.replace(quick_plan(), real_agents=(), real_gateways=0, real_rate_per_agent=10.0)
    return BenchContext(plan, BenchStack(infra, started_here=False), OperatorRoot.generate(), tmp_path, Progress())


async def test_blast_run_counts_every_event_once_and_reads_cpu_per_stage(infra: Infra, tmp_path: Path) -> None:
    ctx = _ctx(infra, tmp_path)
    result = await measured_run(ctx, RunSpec("itest-blast", Layout.SPLIT, 2, 2, None, 600))
    assert (result.events, result.lost, result.duplicated, result.unexpected, result.state_outstanding) == (
        600,
        0,
        0,
        0,
        0,
    )
    assert result.event_records == 600 + 300  # the run's events plus the warm-up's
    assert result.throughput_eps > 0
    assert result.latency.count > 0
    assert set(result.cpu_s) == {"verifier", "reconciler", "kafka", "bench"}
    assert result.cpu_s["verifier"] > 0 and result.cpu_s["reconciler"] > 0
    assert set(result.extra["stage_time"]) == {"verifier", "reconciler"}


async def test_paced_run_with_a_real_agent_matches_its_outbox(infra: Infra, tmp_path: Path) -> None:
    ctx = _ctx(infra, tmp_path)
    plan = dataclasses.replace(ctx.plan, real_agents=((quick_plan().real_agents[0][0], 1),), real_rate_per_agent=10.0)
    ctx.plan = plan
    agents = RealFleet(plan, tmp_path / "agents", "it", with_bridge=False)
    (tmp_path / "agents").mkdir()
    spec = RunSpec("itest-paced", Layout.COMBINED, 1, 2, 300.0, 600, duration_s=2.0)
    result = await measured_run(ctx, spec, agents)
    assert (result.lost, result.duplicated, result.unexpected, result.state_outstanding) == (0, 0, 0, 0)
    report = result.extra["real_agents"]
    (row,) = report["agents"]
    assert row["submitted"] > 0
    assert row["outbox_last_seq"] == row["submitted"] == row["outbox_acked_seq"]
    assert row["outbox_pending"] == 0
    assert report["e2e_ms"]["count"] == row["submitted"]
