"""Fixtures for the core fault tests (tests/faults/rig.py builds the topics, root key and agents)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from broker.infra.local import LocalDeployment
from tests.faults.rig import Rig, make_rig


@pytest.fixture
async def rig(deployment: LocalDeployment, unique_prefix: str) -> AsyncIterator[Rig]:
    yield await make_rig(deployment, unique_prefix)
