"""The subscriber contract on the real stack (issue 17): what the core writes on the state, shielding, dead-letter
and a site's feed validates against the committed schemas, read over TLS by least-privilege principals with
``broker.subscribe.Subscriber`` (site feeds verified with the core's key) and ``consent-broker subscribe``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
import pytest

from broker.infra.acls import Principal, Role
from broker.infra.security import grant_for_prefix
from broker.subscribe import Delivered, Subscriber
from consent_wire.codes import ConsentDirective, PurposeOfUse
from tests.factories import BASE_MS, SimAgent, consent, objection, patient, shielding
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("consent-broker"))


async def _until(harness: Harness, principal: str, kind: str, count: int) -> list[Delivered]:
    conn = harness.deployment.infra.kafka_connection(principal)
    core_key = harness.core_signer.public_key if kind.startswith("site:") else None
    for _ in range(240):
        async with Subscriber(conn, prefix=harness.topics.prefix, kind=kind, core_key=core_key, follow=False) as sub:
            records = [d async for d in sub]
        if len(records) >= count:
            return records
        await asyncio.sleep(0.5)
    raise AssertionError(f"{kind}: {len(records)} records, expected {count}")


async def test_subscribers_get_checked_records_of_every_topic_with_their_own_principals(harness: Harness) -> None:
    prefix = harness.topics.prefix
    hub, ops = f"hub-{prefix}", f"ops-{prefix}"
    gp = SimAgent.create(site="A81001")
    await grant_for_prefix(
        harness.kafka,
        prefix,
        harness.app_id,
        [Principal(hub, Role.SUBSCRIBER), Principal(ops, Role.MONITOR), Principal(gp.agent_id, Role.AGENT, "A81001")],
    )
    await harness.register(gp)
    await harness.start_core(stages="verifier,reconciler,mirror")
    a, b = patient(1), patient(2)
    events = [
        gp.event(a, consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH), BASE_MS),
        gp.event(a, objection(), BASE_MS + 1),
        gp.event(b, shielding(), BASE_MS + 2),
    ]
    await harness.send(gp, [gp.batch(events)])
    await harness.send_raw(b"junk", [b"\x00\x01not avro"])

    states = await _until(harness, hub, "state", 2)
    assert all(d.problem is None and d.record is not None for d in states)
    assert {d.record["patient_key"] for d in states if d.record} == {a, b}
    shields = await _until(harness, hub, "shielding", 1)
    assert [(d.problem, d.record["active"]) for d in shields if d.record] == [(None, True)]
    letters = await _until(harness, ops, "deadletter", 1)
    assert all(d.problem is None and d.record and d.record["stage"] == "verifier" for d in letters)
    feed = await _until(harness, gp.agent_id, "site:A81001", 3)  # the agent's own principal reads its feed
    assert all(d.verified and d.problem is None for d in feed), [d.problem for d in feed]

    operator_dir = harness.deployment.infra.config.pki_dir
    proc = await asyncio.create_subprocess_exec(
        CLI, "subscribe", "--topic", "state", "--to-end", "--prefix", prefix, "--bootstrap", harness.bootstrap,
        "--tls-dir", str(operator_dir / hub), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    printed = [orjson.loads(line) for line in out.splitlines()]
    assert {p["record"]["patient_key"] for p in printed} == {a, b} and all(p["problem"] is None for p in printed)
