"""Issue 12 item 7: a revocation is permanent; nothing later on the keys topic can erase it."""

from __future__ import annotations

import pytest

from broker.topics import Topic, specs
from consent_wire.errors import InvalidKeyEventError, RevokedKeyError
from consent_wire.keys import KeyRegistry, OperatorRoot
from tests.factories import BASE_MS, SimAgent


def _revoked() -> tuple[OperatorRoot, KeyRegistry, SimAgent]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    registry.apply(root.revoke(agent.agent_id, agent.signer.public_key_bytes, BASE_MS))
    return root, registry, agent


def test_registering_a_revoked_key_again_cannot_erase_the_revocation() -> None:
    root, registry, agent = _revoked()
    with pytest.raises(InvalidKeyEventError, match="revoked key can never be registered again"):
        registry.apply(agent.register(root, BASE_MS + 1000))
    with pytest.raises(RevokedKeyError):
        registry.key_for(agent.agent_id, BASE_MS + 2000)


def test_a_revoked_key_cannot_be_registered_for_another_agent() -> None:
    root, registry, agent = _revoked()
    with pytest.raises(InvalidKeyEventError, match="revoked"):
        registry.apply(
            root.register(
                "agent-other", agent.signer.public_key_bytes, BASE_MS + 1000, site=agent.site, capabilities=()
            )
        )


def test_a_later_revocation_cannot_move_a_revocation_later() -> None:
    root, registry, agent = _revoked()
    registry.apply(root.revoke(agent.agent_id, agent.signer.public_key_bytes, BASE_MS + 10**9))
    with pytest.raises(RevokedKeyError):
        registry.key_for(agent.agent_id, BASE_MS)


@pytest.mark.parametrize("tombstone", [None, b""])
def test_a_tombstone_on_the_keys_topic_is_refused(tombstone: bytes | None) -> None:
    _, registry, agent = _revoked()
    with pytest.raises(InvalidKeyEventError, match="tombstone"):
        registry.apply(tombstone)
    with pytest.raises(RevokedKeyError):
        registry.key_for(agent.agent_id, BASE_MS)


def test_the_keys_topic_is_append_only_so_compaction_cannot_erase_a_revocation() -> None:
    (keys,) = [s for s in specs() if s.topic is Topic.KEYS]
    configs = keys.configs(3)
    assert configs["cleanup.policy"] == "delete"
    assert configs["retention.ms"] == "-1"
