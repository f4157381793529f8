"""KeysFollower over the in-memory TopicReader: catches up on start, applies new key events, skips bad ones."""

from __future__ import annotations

from broker.keys_follower import KeysFollower
from consent_wire.dsse import AgentSigner
from consent_wire.keys import KeyRegistry, OperatorRoot
from tests.fakes import FakeTopicReader


async def test_start_applies_every_key_event_already_on_the_topic_and_skips_a_bad_one_with_its_reason() -> None:
    root = OperatorRoot.generate()
    first, second = AgentSigner.generate("agent-1"), AgentSigner.generate("agent-2")
    reader = FakeTopicReader("keys", batch=1)
    reader.append(root.register(first.agent_id, first.public_key_bytes, 0, site="A81001", capabilities=()))
    reader.append(b"not a key event")
    reader.append(root.register(second.agent_id, second.public_key_bytes, 0, site="A81001", capabilities=()))
    registry = KeyRegistry(root.public_key)
    follower = KeysFollower(reader, registry)

    await follower.start()

    assert reader.started and await reader.caught_up()
    assert len(registry.periods("agent-1")) == 1
    assert len(registry.periods("agent-2")) == 1
    assert follower.rejected == ["BAD_MAGIC"]
    await follower.stop()
    assert reader.stopped


async def test_poll_applies_key_events_written_after_start() -> None:
    root = OperatorRoot.generate()
    agent = AgentSigner.generate("agent-late")
    reader = FakeTopicReader("keys")
    registry = KeyRegistry(root.public_key)
    follower = KeysFollower(reader, registry)
    await follower.start()
    assert registry.periods("agent-late") == ()

    reader.append(root.register(agent.agent_id, agent.public_key_bytes, 0, site="A81001", capabilities=()))
    assert await follower.poll() == 1
    assert len(registry.periods("agent-late")) == 1


async def test_catch_up_reads_to_the_end_offsets_of_now_where_one_poll_does_not() -> None:
    root = OperatorRoot.generate()
    agent = AgentSigner.generate("agent-new")
    reader = FakeTopicReader("keys", lagging=True)  # a prefetching consumer: a fetch brings what the previous saw
    registry = KeyRegistry(root.public_key)
    follower = KeysFollower(reader, registry)
    await follower.start()
    reader.append(root.register(agent.agent_id, agent.public_key_bytes, 0, site="A81001", capabilities=()))

    assert await follower.poll() == 0 and registry.periods("agent-new") == ()
    assert await follower.catch_up(timeout_s=5.0)
    assert len(registry.periods("agent-new")) == 1
    assert reader.end_requests == 1


async def test_catch_up_gives_up_after_its_bound() -> None:
    root = OperatorRoot.generate()
    reader = FakeTopicReader("keys", lagging=True)
    follower = KeysFollower(reader, KeyRegistry(root.public_key))
    await follower.start()
    reader.append(b"a record the reader never hands out")
    reader.lagging, reader.batch = True, 0  # fetches bring nothing

    assert not await follower.catch_up(timeout_s=0.05)
