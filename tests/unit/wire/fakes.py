"""Shared fixtures-as-functions for wire tests: an operator, a registry and an agent with a key."""

from __future__ import annotations

from dataclasses import dataclass

from consent_wire import AgentSigner, KeyRegistry, OperatorRoot, grantable

KEY_FROM_MS = 0
SITE = "A81001"  # the site of strategies.chain_of


@dataclass
class Trust:
    root: OperatorRoot
    registry: KeyRegistry
    signer: AgentSigner


def trust(agent_id: str = "agent-1") -> Trust:
    root = OperatorRoot.from_private_bytes(bytes(range(32)))
    registry = KeyRegistry(root.public_key)
    signer = AgentSigner.from_private_bytes(agent_id, bytes(range(1, 33)))
    registry.apply(
        root.register(agent_id, signer.public_key_bytes, KEY_FROM_MS, site=SITE, capabilities=grantable(SITE))
    )
    return Trust(root, registry, signer)
