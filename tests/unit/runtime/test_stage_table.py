"""Stages and commands are found in explicit tables, each name exactly once."""

from __future__ import annotations

import subprocess
import sys

from broker.cli import COMMANDS, cli, feature_command
from broker.runtime import PIPELINE_STAGES, SERVICES
from broker.settings import STAGES


def test_every_stage_name_is_built_by_the_core_exactly_once() -> None:
    assert sorted((*PIPELINE_STAGES, *SERVICES)) == sorted(STAGES)


def test_every_feature_command_is_registered_on_the_cli() -> None:
    assert list(COMMANDS) == ["audit", "clients", "demo", "keys", "reports", "subscribe", "witness"]
    assert all(cli.get_command(None, n) is feature_command(n) for n in COMMANDS)  # type: ignore[arg-type]
    assert set(COMMANDS) <= set(cli.list_commands(None))  # type: ignore[arg-type]


def test_a_stage_process_imports_neither_the_feature_commands_nor_other_stages_services() -> None:
    """``consent-broker run --stages verifier`` starts without the API, the bridge, the mirror or the commands."""
    code = (
        "import sys, broker.cli, broker.runtime; "
        "print(','.join(m for m in sys.modules if m.startswith(('broker.commands.', 'broker.api', 'broker.bridge', "
        "'broker.mirror.service', 'broker.witness', 'broker.demo'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded.split(",") == ["broker.commands.connection"]
