"""Two API instances on the real broker (issue 16): they answer the same request identically, both answers are
audited (the holder appends its own, the other's go through audit-requests), the log stays one chain that
verifies and holds every answered request exactly once, both serve the access log with proofs, and when the
holder stops the other takes the log over with nothing lost or doubled."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broker.api import ApiService
from broker.audit import AuditRecord, RecordKind, parse_log
from broker.audit.keyfile import load_signer
from broker.audit.note import ALG_ED25519
from consent_io import kafka
from tests.factories import SimAgent
from tests.integration.api.conftest import cli
from tests.integration.api.test_api_service import (
    CLIENTS,
    CONSENTED,
    OPTED_OUT,
    Api,
    Door,
    requester,
    researcher,
    send_site_events,
    until,
)
from tests.integration.audit.conftest import start_witness
from tests.integration.pipeline.conftest import Harness

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_AUDIT_FIELDS = ("audit_index", "audit_request", "decided_at_ms")


def _decision_part(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in _AUDIT_FIELDS}


async def _audit_lines(harness: Harness) -> list[bytes]:
    records = await kafka.read_to_end(harness.kafka, harness.topics.audit)
    return [r.value for r in records if r.value is not None]


async def test_two_api_instances_answer_alike_and_the_audit_log_stays_one_chain_across_a_takeover(
    harness: Harness, secret_file: Path, tmp_path: Path
) -> None:
    secret = bytes.fromhex(await asyncio.to_thread(secret_file.read_text))
    gp = SimAgent.create(site="A81001")
    await harness.register(gp)
    door = Door(harness.deployment, *harness.deployment.api_door(tmp_path / "door", CLIENTS))
    origin = f"{harness.app_id}/{harness.topics.prefix}.audit"
    log_key = load_signer(str(door.settings["audit_key_file"]), origin, ALG_ED25519, "audit key").verifier
    witness, witness_key = await start_witness(harness.deployment, tmp_path, "witness-many", {origin: log_key})
    witness_url = f"https://127.0.0.1:{witness.port}"
    settings = {
        "pseudonym_secret_file": str(secret_file),
        "http_port": 0,
        **door.settings,
        "insecure_unwitnessed_audit": False,
        "audit_witnesses": f"{witness_url} {witness_key.verifier.vkey()}",
        "audit_answer_after": "append",  # the holder appends its own answers' entries directly (the other: requests)
    }
    holder = await harness.start_core(**settings, stages="verifier,reconciler,reports,api")
    service_a = holder.services["api"]
    assert isinstance(service_a, ApiService)
    # the first instance holds the log before the second joins (start() answers anyway after ELECTION_WAIT_S: on
    # a slow machine the election can take longer, and then either instance may be elected)
    await until(lambda: asyncio.sleep(0, service_a.appender.holding), bool, timeout_s=120)
    other = await harness.start_core(**settings, stages="api", api_view_dir=str(tmp_path / "other-views"))
    await send_site_events(harness, gp, secret)
    answered: list[str] = []  # accessor ids of every decision answered 200 (each is audited once)
    async with aiohttp.ClientSession() as session:
        a, b = Api(session, holder, door), Api(session, other, door)
        for api in (a, b):
            await until(api.health, lambda h: h["status"] == "ok")
            await until(lambda api=api: api.get(f"/v1/patients/{OPTED_OUT}/consent"), lambda s: s["version"] == 1)  # type: ignore[misc]
        service_b = other.services["api"]
        assert isinstance(service_b, ApiService)
        assert service_a.appender.holding and not service_b.appender.holding

        # the same request and state version: the same decision from either instance
        for i, (nhs, who, purpose) in enumerate(
            [
                (OPTED_OUT, researcher(), "HRESCH"),
                (OPTED_OUT, requester(), "TREAT"),
                (CONSENTED, researcher(), "HRESCH"),
            ]
        ):
            answers = []
            for name, api in (("a", a), ("b", b)):
                accessor = f"staff-{name}{i}"
                answers.append(await api.decide(nhs, {**who, "accessor_id": accessor}, purpose, ["GENERAL"]))
                answered.append(accessor)
            from_a, from_b = answers
            assert _decision_part(from_a) == _decision_part(from_b)
            assert isinstance(from_a["audit_index"], int) and from_a["audit_request"] is None  # the holder's own
            assert from_b["audit_index"] is None and set(from_b["audit_request"]) == {"partition", "offset"}

        # both instances serve the access log, from their own views of the one log, with inclusion proofs
        def decisions_of(accesses: dict[str, Any]) -> list[str]:
            return sorted(x["accessor_id"] for x in accesses["accesses"] if x["kind"] == "DECISION")

        wanted = sorted(x for x in answered if x[-1] in "01")
        for api in (a, b):
            seen = await until(lambda api=api: api.get(f"/v1/patients/{OPTED_OUT}/accesses"),  # type: ignore[misc]
                               lambda acc: decisions_of(acc) == wanted)  # fmt: skip
            assert [x["kind"] for x in seen["accesses"]].count("ACCESS") == 1  # the site's access record, once
        proven = await until(
            lambda: b.get(f"/v1/patients/{OPTED_OUT}/accesses"),
            lambda acc: all(x["inclusion_proof"] for x in acc["accesses"] if x["kind"] == "DECISION"),
        )
        assert proven["accesses"]

        # the holder stops: the other takes the log over, and what it answers meanwhile is appended once
        await holder.stop()
        harness.cores.remove(holder)
        for i in range(6):
            accessor = f"staff-t{i}"
            await b.decide(CONSENTED, {**researcher(), "accessor_id": accessor}, "HRESCH", ["GENERAL"])
            answered.append(accessor)
        await until(lambda: asyncio.sleep(0, service_b.appender.holding), bool, timeout_s=120)
        last = await b.decide(CONSENTED, {**researcher(), "accessor_id": "staff-last"}, "HRESCH", ["GENERAL"])
        answered.append("staff-last")
        assert isinstance(last["audit_index"], int)  # now the holder: its own entries are appended directly

        # another producer with the appenders' transactional id fences the holder: it stops appending, a new
        # appender rejoins the election and holds the log again (answers meanwhile: 503, or via requests)
        fenced = service_b.appender  # before the fence: the holder may notice it, and be replaced, while it starts
        fence = kafka.transactional_producer(harness.deployment.stage_kafka("api"), f"{harness.app_id}.api.audit")
        await fence.start()
        await fence.stop()
        for i in range(200):
            who = {**researcher(), "accessor_id": f"staff-f{i}"}
            status, answer = await b.refused(CONSENTED, who, as_organisation="RESLAB1")
            assert status in (200, 503), answer
            if status == 200:
                answered.append(f"staff-f{i}")
                if service_b.appender is not fenced and isinstance(answer["audit_index"], int):
                    break
            else:
                assert answer["reason"] == "AUDIT_UNAVAILABLE"
            await asyncio.sleep(0.2)
        assert service_b.appender is not fenced and service_b.appender.holding

        def decided(lines: list[bytes]) -> collections.Counter[str]:
            entries = parse_log(lines).entries
            return collections.Counter(
                r.accessor_id
                for r in (AuditRecord.from_bytes(e.record) for e in entries)
                if r.kind == RecordKind.DECISION
            )

        counts = await until(lambda: _audit_lines(harness), lambda lines: set(answered) <= set(decided(lines)))
        assert decided(counts) == collections.Counter(answered)  # every answered decision exactly once
        await until(b.health, lambda h: h["status"] == "ok")
        size = len(parse_log(counts).entries)
    await other.stop()
    harness.cores.remove(other)

    operator = harness.deployment.infra.config.pki_dir / "operator"
    prefix = ["--bootstrap", harness.bootstrap, "--prefix", harness.topics.prefix, "--tls-dir", str(operator)]
    keys = ["--log-key", log_key.vkey(), "--witness-key", witness_key.verifier.vkey(), "--witness-url", witness_url]
    verified = await cli("audit", "verify", *prefix, *keys)
    await witness.stop()
    assert verified.code == 0, verified.out + verified.err
    entries = int(verified.out.split()[1])
    assert entries >= size  # one chain: every entry, the ones appended after the count included, verifies
    assert len(parse_log(await _audit_lines(harness)).entries) == entries
