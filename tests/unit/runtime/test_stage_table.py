"""Stages and commands are found in explicit tables, each name exactly once."""

from __future__ import annotations

from broker.cli import COMMANDS, cli
from broker.runtime import PIPELINE_STAGES, SERVICES
from broker.settings import STAGES


def test_every_stage_name_is_built_by_the_core_exactly_once() -> None:
    assert sorted((*PIPELINE_STAGES, *SERVICES)) == sorted(STAGES)


def test_every_feature_command_is_registered_on_the_cli() -> None:
    names = [c.name for c in COMMANDS]
    assert names == ["audit", "clients", "demo", "keys", "reports", "subscribe", "witness"]
    assert all(cli.get_command(None, n) is c for n, c in zip(names, COMMANDS, strict=True))  # type: ignore[arg-type]
