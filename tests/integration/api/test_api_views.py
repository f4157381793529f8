"""Issue 16 on the real stack: the API's views persist in SQLite and a restart resumes instead of replaying."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from broker.api import ApiService
from broker.audit.note import Checkpoint, parse_note
from consent_io.kafka import read_to_end
from consent_wire import verify_inclusion
from tests.factories import BASE_MS, SimAgent
from tests.integration.api.test_api_service import (
    CLIENTS,
    CONSENTED,
    OPTED_OUT,
    Api,
    Door,
    _shares,
    requester,
    researcher,
    send_site_events,
    until,
)
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration


async def test_a_restarted_api_resumes_its_views_and_answers_the_same(
    harness: Harness, secret_file: Path, tmp_path: Path
) -> None:
    secret = bytes.fromhex(await asyncio.to_thread(secret_file.read_text))
    gp = SimAgent.create(site="A81001")
    await harness.register(gp)
    door = Door(harness.deployment, *harness.deployment.api_door(tmp_path / "door", CLIENTS))
    views = tmp_path / "views"
    settings = {"stages": "verifier,reconciler,reports,api", "pseudonym_secret_file": str(secret_file), "http_port": 0,
                "api_view_dir": str(views), "api_view_cache_entries": 2, **door.settings}  # fmt: skip
    core = await harness.start_core(**settings)
    await send_site_events(harness, gp, secret)
    async with aiohttp.ClientSession() as session:
        api = Api(session, core, door)
        await until(api.health, lambda h: h["status"] == "ok" and h["events"] == 6)
        await until(lambda: api.get(f"/v1/patients/{CONSENTED}/consent"), lambda s: s["version"] == 1)
        before = await api.decide(CONSENTED, researcher(), "HRESCH", ["GENERAL"])
        past = await api.decide(CONSENTED, researcher(), "HRESCH", ["GENERAL"], as_at=BASE_MS + 1)
        # the three state-changing events' records are on the state topic and this API has read them
        written = len(await harness.read(harness.topics.state, lambda rs: len(rs) >= 3))
        read_first = (await until(api.health, lambda h: h["patients"] >= written))["patients"]
        await until(lambda: api.get("/v1/reports/disclosures"), lambda r: bool(r["rows"]))  # the aggregates read
        first = core.services["api"]
        assert isinstance(first, ApiService)
        followed = await until(lambda: asyncio.sleep(0, first.audit_view.size), lambda n: n > 0)
    await core.stop()
    harness.cores.remove(core)
    assert list(views.glob("*.views.sqlite3"))

    core = await harness.start_core(**{**settings, "stages": "api"})
    service = core.services["api"]
    assert isinstance(service, ApiService)
    async with aiohttp.ClientSession() as session:
        api = Api(session, core, door)
        health = await until(api.health, lambda h: h["status"] == "ok")
        # resumed: of the state topic, only what the first API had not read (records the reconciler wrote after
        # its last fetch, if any); of the events topic, nothing
        on_topic = len(await read_to_end(harness.kafka, harness.topics.state))
        assert (health["patients"], health["events"]) == (on_topic - read_first, 0)
        assert read_first > 0
        after = await api.decide(CONSENTED, researcher(), "HRESCH", ["GENERAL"])
        past_again = await api.decide(CONSENTED, researcher(), "HRESCH", ["GENERAL"], as_at=BASE_MS + 1)
        opted_out = await api.decide(OPTED_OUT, requester(), "TREAT", ["GENERAL"])
        # the decision's entry is appended behind its answer (through its audit request): wait for it
        accesses = await until(lambda: api.get(f"/v1/patients/{OPTED_OUT}/accesses"), lambda a: len(_shares(a)) >= 2)
        disclosed = await api.get("/v1/reports/disclosures")
        # the audit follower resumed from its stored tree (files beside the views), not from the log's start, and
        # the proofs it draws from the reopened files verify against the cosigned checkpoint
        resumed = service.audit_view.resumed_at
        entry = next(a for a in _shares(accesses) if a["kind"] == "ACCESS")
        proof = await until(lambda: asyncio.sleep(0, service.audit_view.proof(entry["index"])), lambda p: p is not None)
    await core.stop()
    harness.cores.remove(core)

    same = ("outcome", "state_version", "codes", "legal_basis", "obligations")
    assert {k: after[k] for k in same} == {k: before[k] for k in same}
    assert {k: past_again[k] for k in same} == {k: past[k] for k in same}  # "as at" from the stored history
    assert opted_out["outcome"] == "PERMIT"
    assert [a["kind"] for a in _shares(accesses)] == ["ACCESS", "DECISION"]  # the audit index survived
    assert [r["recipient"] for r in disclosed["rows"]] == ["RESLAB1"]
    assert resumed >= followed > 0
    assert proof is not None
    root = Checkpoint.parse(parse_note(proof.checkpoint).text).root
    verify_inclusion(entry["record"].encode(), entry["index"], proof.tree_size, proof.hashes, root)
