"""The annotated configuration files shipped in deploy/ load with the real settings loaders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.settings import STAGES, CoreSettings, SettingsError
from consent_io.secrets import write_secret
from edge_agent.config import load_settings
from tests.factories import api_door, core_tls, pseudonym_secret

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ROOT_HEX = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"  # RFC 8032 test 1 public key


def _deployed_files(tmp_path: Path) -> dict[str, str]:
    """What an operator puts in place of the file's placeholders."""
    write_secret(tmp_path / "pseudonym.secret", b"ab" * 32 + b"\n")
    write_secret(tmp_path / "audit.key", b"11" * 32 + b"\n")
    write_secret(tmp_path / "core-signing.key", b"22" * 32 + b"\n")
    (tmp_path / "list-sizes.csv").write_text("practice,list_size\nA81001,6000\n")
    return {
        **api_door(tmp_path / "door"),
        **core_tls(tmp_path),
        "root_public_key_hex": ROOT_HEX,
        "pseudonym_secret_file": str(tmp_path / "pseudonym.secret"),
        "audit_key_file": str(tmp_path / "audit.key"),
        "core_signing_key_file": str(tmp_path / "core-signing.key"),
        "list_sizes_file": str(tmp_path / "list-sizes.csv"),
        "decision_policy_file": str(DEPLOY / "decision-policy.toml"),  # the shipped, annotated example
    }


def test_core_config_loads_and_names_only_known_stages(tmp_path: Path) -> None:
    settings = CoreSettings.load(DEPLOY / "consent-core.toml", **_deployed_files(tmp_path))
    assert settings.bootstrap == "kafka1:9092,kafka2:9092,kafka3:9092"
    assert set(settings.stages) <= set(STAGES)


def test_core_config_placeholders_are_refused_until_replaced() -> None:
    with pytest.raises(SettingsError) as caught:
        CoreSettings.load(DEPLOY / "consent-core.toml")
    message = str(caught.value)
    assert "setting root_public_key_hex='replace-with-operator-root-public-key-hex'" in message
    assert "setting pseudonym_secret_file='/etc/consent-core/pseudonym.secret'" in message


def test_edge_agent_config_loads() -> None:
    settings = load_settings(DEPLOY / "edge-agent.toml", {"EDGE_AGENT_CORE_PUBLIC_KEY_HEX": ROOT_HEX})
    assert settings.transport == "kafka"
    assert settings.http_host == "127.0.0.1"


def test_environment_overrides_the_core_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSENT_BOOTSTRAP", "k:1")
    monkeypatch.setenv("CONSENT_STAGES", "verifier")
    monkeypatch.setenv("CONSENT_ROOT_PUBLIC_KEY_HEX", ROOT_HEX)
    for name, value in {**core_tls(tmp_path, ("verifier",)), **pseudonym_secret(tmp_path)}.items():
        monkeypatch.setenv(f"CONSENT_{name.upper()}", value)
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
