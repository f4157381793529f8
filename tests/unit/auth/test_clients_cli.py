"""``consent-broker clients``: an operator registers, lists and revokes API clients."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from broker.auth import ClientRegistry
from broker.cli import cli


def test_an_operator_adds_lists_and_removes_a_client(tmp_path: Path) -> None:
    registry, key = tmp_path / "clients.toml", tmp_path / "rx1.pem"
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["clients", "add", "--registry", str(registry), "--id", "rx1-ehr", "--organisation", "RX1",
         "--role", "CONSULTANT", "--scope", "decisions", "--scope", "patient.read", "--key-out", str(key)],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert key.stat().st_mode & 0o777 == 0o600
    listed = runner.invoke(cli, ["clients", "list", "--registry", str(registry)])
    assert listed.output.strip() == "rx1-ehr\tRX1\troles=CONSULTANT\tscopes=decisions,patient.read"
    bad = runner.invoke(
        cli, ["clients", "add", "--registry", str(registry), "--id", "x", "--organisation", "RX1",
              "--scope", "everything", "--key-out", str(tmp_path / "x.pem")],
    )  # fmt: skip
    assert bad.exit_code != 0 and "everything" in bad.output
    assert runner.invoke(cli, ["clients", "remove", "--registry", str(registry), "--id", "rx1-ehr"]).exit_code == 0
    assert ClientRegistry.load(registry).get("rx1-ehr") is None
    again = runner.invoke(cli, ["clients", "remove", "--registry", str(registry), "--id", "rx1-ehr"])
    assert again.exit_code != 0 and "not registered" in again.output
