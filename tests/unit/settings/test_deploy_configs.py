"""The annotated configuration files shipped in deploy/ load with the real settings loaders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.settings import STAGES, CoreSettings, SettingsError
from edge_agent.config import load_settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_core_config_loads_and_names_only_known_stages() -> None:
    settings = CoreSettings.load(DEPLOY / "consent-core.toml")
    assert settings.bootstrap == "kafka1:9092,kafka2:9092,kafka3:9092"
    assert set(settings.stages) <= set(STAGES)


def test_edge_agent_config_loads() -> None:
    settings = load_settings(DEPLOY / "edge-agent.toml", {})
    assert settings.transport == "kafka"
    assert settings.http_host == "127.0.0.1"


def test_environment_overrides_the_core_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_BOOTSTRAP", "k:1")
    monkeypatch.setenv("CONSENT_STAGES", "verifier")
    settings = CoreSettings.load(DEPLOY / "consent-core.toml")
    assert (settings.bootstrap, settings.stages) == ("k:1", ("verifier",))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stages": "verifier,teleport"}, "unknown stage(s) ['teleport']"),
        ({"http_port": "eighty"}, "setting http_port must be an integer, got 'eighty'"),
        ({"colour": "blue"}, "unknown setting 'colour'"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        CoreSettings.load(None, **overrides)
