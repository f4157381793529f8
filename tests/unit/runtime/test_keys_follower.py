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
