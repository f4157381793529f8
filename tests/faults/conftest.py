"""Fixtures for the core fault tests (tests/faults/rig.py builds the topics, root key and agents)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.faults.rig import Rig, make_rig


@pytest.fixture
async def rig(kafka_bootstrap: str, unique_prefix: str) -> AsyncIterator[Rig]:
    yield await make_rig(kafka_bootstrap, unique_prefix)
