"""The reports stage under kill -9 (issue 16): after restarts, the running aggregates on the compacted reports topic
give exactly the reports a recount of the events topic gives (the raw-event computation is the oracle): no
event lost, none counted twice, whatever transaction the kill interrupted."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.reports import breach_incidents, breach_summary, disclosures, objection_rates
from broker.reports.aggregates import (
    AggKind,
    Aggregate,
    breach_reports,
    day_window,
    decode_aggregate,
    disclosure_report,
    objection_report,
    totals_of,
)
from consent_wire.authority import is_gp_practice
from consent_wire.codes import (
    BreachSeverity,
    DataClass,
    LegalBasis,
    ObjectionAction,
    PurposeOfUse,
    Relationship,
)
from consent_wire.model import AccessRecord, BreachReport, Event, Objection
from consent_wire.signing import verified_event_payload
from tests.factories import SimAgent, objection, patient
from tests.faults.rig import SITES, Rig
from tests.faults.support import (
    KINDS,
    NON_GP_KINDS,
    CoreProcess,
    Traffic,
    read_all,
    wait_open_transaction,
    wait_progress,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)
SIZES = dict.fromkeys(SITES, 100_000)


@dataclass
class ReportTraffic(Traffic):
    """Objections, disclosures (over a few days) and breach reports, the events the reports count."""

    def _event(self, agent: SimAgent, rng: random.Random, at_ms: int) -> bytes:
        key = patient(rng.randrange(self.patients))
        at_ms -= rng.randrange(4) * 86_400_000  # several days back (within the verifier's clock bounds)
        roll = rng.random()
        if roll < 0.4:
            kinds = KINDS if is_gp_practice(agent.site) else NON_GP_KINDS
            return agent.event(key, objection(rng.choice(kinds), rng.choice(list(ObjectionAction))), at_ms)
        if roll < 0.95:
            purpose = rng.choice((PurposeOfUse.TREAT, PurposeOfUse.HRESCH))
            record = AccessRecord(
                "staff-1", agent.site, "GP", True, Relationship.LEGITIMATE, purpose,
                (rng.choice((DataClass.GENERAL, DataClass.PSY)),),
                rng.choice((None, LegalBasis.IMPLIED_CONSENT_DIRECT_CARE)), rng.choice(("RESLAB1", "RX9")),
            )  # fmt: skip
            return agent.event(key, record, at_ms)
        breach = BreachReport(agent.site, rng.choice(list(BreachSeverity)), "LOST", "post", "retrained", True, 1)
        return agent.event("", breach, at_ms)


async def _recount(rig: Rig) -> list[Event]:
    return [verified_event_payload(r.value) for r in await read_all(rig.conn, rig.topics.events)]


async def _aggregates(rig: Rig) -> list[Aggregate]:
    latest = {bytes(r.key): bytes(r.value) for r in await read_all(rig.conn, rig.topics.reports)}
    return [decode_aggregate(v) for v in latest.values()]


def _differences(events: list[Event], aggregates: list[Aggregate]) -> list[str]:
    problems = []
    objectors = totals_of(a for a in aggregates if a.key.kind is AggKind.OBJECTORS)
    if objection_report(objectors, SIZES) != objection_rates(events, SIZES):
        problems.append("objections")
    shared = totals_of((a for a in aggregates if a.key.kind is AggKind.DISCLOSURES), *day_window(None, None))
    if disclosure_report(shared) != disclosures(events):
        problems.append("disclosures")
    summary, incidents = breach_reports(aggregates, None, None)
    if summary != breach_summary(events) or incidents != breach_incidents(events):
        problems.append("breaches")
    return problems


async def test_kill_9_of_the_reports_stage_neither_loses_nor_doubles_a_count(rig: Rig, tmp_path: Path) -> None:
    env = {**rig.env(), "CONSENT_STAGES": "verifier,reconciler,reports"}
    core = CoreProcess(env, tmp_path / "core.log")
    traffic = ReportTraffic(rig.conn, rig.topics.ingress, rig.agents, patients=30, batch_size=10)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    caught: list[bool] = []
    try:
        await wait_progress(rig.conn, rig.topics.ingress, more=100)
        core.start()
        for _ in range(2):  # killed while a reports transaction is open (aggregates written, not committed)
            await wait_progress(rig.conn, rig.topics.reports, more=200, timeout_s=180)
            caught.append(await wait_open_transaction(rig.conn, rig.topics.reports))
            core.kill()
            core.start()
        await wait_progress(rig.conn, rig.topics.reports, more=100, timeout_s=180)
        stop.set()
        await sender
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 180
        while True:  # the stage catches up with what was sent; then the recount and the aggregates agree
            events, aggregates = await _recount(rig), await _aggregates(rig)
            problems = _differences(events, aggregates)
            if not problems or loop.time() > deadline:
                break
            await asyncio.sleep(2)
    finally:
        stop.set()
        core.stop()
    log.warning("reports kill-9 starts=%d open_txn=%s events=%d aggregates=%d", core.starts, caught, len(events),
                len(aggregates))  # fmt: skip
    assert len(events) >= 300 and core.starts == 3
    assert {type(e.payload) for e in events} == {AccessRecord, BreachReport, Objection}
    assert problems == []
    memory = await read_all(rig.conn, rig.topics.report_memory)
    assert memory and all(bytes(r.key).decode() in {patient(i) for i in range(30)} for r in memory)
    pseudonyms = {patient(i).encode() for i in range(30)}
    for a in aggregates:  # minimum necessary: counts only, no patient key in any aggregate
        assert not any(p in a.key.to_bytes() + a.to_bytes() for p in pseudonyms)
