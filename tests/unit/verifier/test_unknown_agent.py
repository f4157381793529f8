"""A new agent's first batch reaching the verifier before its keys follower has read the registration (issue 12).

The bridge forwards a batch only once its own follower has read the agent's registration, so the registration is
on the keys topic before the batch is on ingress; the verifier's follower may still be behind (its fetch already
in flight). ``VerifierLogic.prepare`` reads the keys topic to its end before such a batch is processed, so the batch
is verified, not dead-lettered UNKNOWN_KEY; a never-registered agent is still dead-lettered, and a flood of them
costs at most one ListOffsets per check interval.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from broker.keys_follower import KeysFollower
from broker.pipeline import VerifierLogic
from broker.stage import Output
from broker.topics import TopicNames
from broker.verifier import VerifierCore
from consent_wire.authority import grantable
from consent_wire.dsse import AgentSigner, key_id
from consent_wire.errors import WireError
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import batch_signer
from tests.factories import BASE_MS, SimAgent, consent, patient
from tests.fakes import FakeRecord, FakeTopicReader

TOPICS = TopicNames("t")


async def _logic(reader: FakeTopicReader, **options: Any) -> tuple[VerifierLogic, OperatorRoot]:
    root = OperatorRoot.generate()
    follower = KeysFollower(reader, KeyRegistry(root.public_key))
    await follower.start()
    return VerifierLogic(TOPICS, VerifierCore(follower.registry), follower, **options), root


def _record(agent: SimAgent, offset: int, n: int = 2) -> FakeRecord:
    batch = agent.batch([agent.event(patient(i), consent(), BASE_MS + i) for i in range(n)])
    return FakeRecord(TOPICS.ingress, 0, offset, agent.agent_id.encode(), batch, BASE_MS + 1000)


async def _poll(logic: VerifierLogic, records: list[FakeRecord]) -> list[Output]:
    """What the stage does with one poll: prepare, then process the partition's records."""
    await logic.prepare([records])
    return logic.process(0, records, BASE_MS + 1000)


def _reasons(outputs: list[Output]) -> list[str | None]:
    return [o.reject_reason for o in outputs if o.topic == TOPICS.deadletter]


def _checks(outcome: str) -> float:
    return REGISTRY.get_sample_value("broker_verifier_key_checks_total", {"outcome": outcome}) or 0.0


async def test_a_first_batch_seen_before_the_follower_read_the_registration_is_verified_not_dead_lettered() -> None:
    reader = FakeTopicReader("keys", lagging=True)
    logic, root = await _logic(reader)
    agent = SimAgent.create()
    # on the keys topic, but the follower's fetch in flight predates it: prepare's own poll does not bring it
    reader.append(agent.register(root))
    caught_up = _checks("caught_up")

    outputs = await _poll(logic, [_record(agent, 0)])

    assert _reasons(outputs) == []
    assert [o.topic for o in outputs].count(TOPICS.events) == 2
    assert logic.core.cursors[agent.agent_id].next_seq == 3
    assert reader.end_requests == 1 and _checks("caught_up") == caught_up + 1


async def test_the_first_batch_after_a_rotation_the_follower_has_not_read_is_verified_not_refused() -> None:
    reader = FakeTopicReader("keys", lagging=True)
    logic, root = await _logic(reader)
    agent = SimAgent.create()
    reader.append(agent.register(root))
    assert logic.keys is not None and await logic.keys.catch_up(5.0)  # the registration is read; the rotation not
    assert _reasons(await _poll(logic, [_record(agent, 0)])) == []
    new = AgentSigner.generate(agent.agent_id)
    reader.append(
        root.rotate(agent.signer, new.public_key_bytes, BASE_MS, site=agent.site, capabilities=grantable(agent.site))
    )
    agent.signer = new  # the agent signs with its new key at once; the verifier's follower has not read the ROTATE

    outputs = await _poll(logic, [_record(agent, 1)])

    assert _reasons(outputs) == []  # not BAD_SIGNATURE ("names none of the agent's keys")
    assert logic.core.cursors[agent.agent_id].next_seq == 5


async def test_a_never_registered_agent_is_dead_lettered_unknown_key_after_one_check() -> None:
    reader = FakeTopicReader("keys", lagging=True)
    logic, root = await _logic(reader)
    known, forger = SimAgent.create(), SimAgent.create()
    reader.append(known.register(root))
    await _poll(logic, [_record(known, 0)])
    requests = reader.end_requests

    outputs = await _poll(logic, [_record(known, 1), _record(forger, 2)])

    assert _reasons(outputs) == ["UNKNOWN_KEY"]
    assert [o.topic for o in outputs].count(TOPICS.events) == 2  # the known agent's batch is not held back
    assert reader.end_requests == requests + 1


async def test_polls_of_known_agents_ask_for_no_end_offsets() -> None:
    reader = FakeTopicReader("keys")
    logic, root = await _logic(reader)
    agent = SimAgent.create()
    reader.append(agent.register(root))
    await _poll(logic, [_record(agent, 0)])
    requests = reader.end_requests

    for offset in range(1, 6):
        assert _reasons(await _poll(logic, [_record(agent, offset)])) == []

    assert reader.end_requests == requests


async def test_a_flood_of_forged_agent_ids_costs_one_check_per_interval_and_is_all_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:  # the interval is waited out, not skipped: record it instead
        waits.append(delay)

    reader = FakeTopicReader("keys")
    logic, _root = await _logic(reader, check_interval_s=3600.0)
    monkeypatch.setattr(logic, "sleep", sleep)
    spaced = _checks("spaced")

    letters: list[str | None] = []
    for offset in range(5):
        letters += _reasons(await _poll(logic, [_record(SimAgent.create(), offset)]))

    assert letters == ["UNKNOWN_KEY"] * 5
    assert reader.end_requests == 5
    assert len(waits) == 4 and all(w > 3500.0 for w in waits)  # every check after the first waited its interval
    assert _checks("spaced") == spaced + 4


class _StuckReader(FakeTopicReader):
    """A keys topic whose records never arrive (a follower that cannot catch up)."""

    async def fetch(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[int, list[FakeRecord]]:
        return {}


async def test_a_follower_that_cannot_catch_up_is_bounded_and_the_batch_dead_lettered_with_a_metric() -> None:
    reader = _StuckReader("keys")
    logic, root = await _logic(reader, catch_up_s=0.05)
    agent = SimAgent.create()
    reader.append(agent.register(root))
    timeouts = _checks("timeout")

    outputs = await _poll(logic, [_record(agent, 0)])

    assert _reasons(outputs) == ["UNKNOWN_KEY"]
    assert _checks("timeout") == timeouts + 1


async def test_without_a_keys_follower_prepare_reads_nothing() -> None:
    logic = VerifierLogic(TOPICS, VerifierCore(KeyRegistry(OperatorRoot.generate().public_key)))
    agent = SimAgent.create()
    assert _reasons(await _poll(logic, [_record(agent, 0)])) == ["UNKNOWN_KEY"]


def test_batch_signer_reads_the_agent_and_key_hint_of_a_batch_and_refuses_other_bytes() -> None:
    agent = SimAgent.create()
    batch = _record(agent, 0).value or b""
    assert batch_signer(batch) == (agent.agent_id, key_id(agent.signer.public_key_bytes))
    for junk in (b"", b"\x00\x01not avro", batch[:12], agent.register(OperatorRoot.generate())):
        with pytest.raises(WireError):
            batch_signer(junk)


def test_the_registry_knows_each_key_an_agent_ever_had_and_no_other() -> None:
    root, agent = OperatorRoot.generate(), SimAgent.create()
    registry = KeyRegistry(root.public_key)
    old_hint = key_id(agent.signer.public_key_bytes)
    assert not registry.knows(agent.agent_id, old_hint)
    registry.apply(agent.register(root))
    new = AgentSigner.generate(agent.agent_id)
    registry.apply(root.rotate(agent.signer, new.public_key_bytes, BASE_MS, site=agent.site, capabilities=()))
    assert registry.knows(agent.agent_id, old_hint) and registry.knows(agent.agent_id, key_id(new.public_key_bytes))
    assert not registry.knows(agent.agent_id, "0" * 16) and not registry.knows("someone-else", old_hint)


async def test_a_verified_shielding_flag_commits_at_once_and_bulk_events_wait_for_the_interval() -> None:
    """Issue 18, the shielding fast lane: the verifier's transaction holding a shielding flag is urgent (as the
    reconciler's holding a shielding record is), so a flag waits for no commit interval in either stage."""
    from tests.factories import shielding

    reader = FakeTopicReader("keys")
    logic, root = await _logic(reader)
    agent = SimAgent.create()
    reader.append(agent.register(root))
    payloads = [consent(), shielding(), consent()]
    batch = agent.batch([agent.event(patient(i), p, BASE_MS + i) for i, p in enumerate(payloads)])
    record = FakeRecord(TOPICS.ingress, 0, 0, agent.agent_id.encode(), batch, BASE_MS + 1000)

    outputs = await _poll(logic, [record])

    events = [o for o in outputs if o.topic == TOPICS.events]
    assert [o.urgent for o in events] == [False, True, False]
    assert not any(o.urgent for o in outputs if o.topic != TOPICS.events)
