from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from consent_wire.identity import patient_key
from consent_wire.signing import sign_batch
from consent_wire.site_pseudonyms import CorePseudonyms, site_secret
from edge_agent.cli import cli
from edge_agent.errors import ConfigError
from edge_agent.wire import generate_signing_key, load_agent_signer, load_pseudonymiser
from tests.fakes import VALID_NHS

SECRET = bytes(range(32))


def make_site(tmp_path: Path) -> Path:
    secret = tmp_path / "secret"
    secret.write_text(SECRET.hex() + "\n")
    secret.chmod(0o600)
    generate_signing_key(tmp_path / "key.pem")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nid = "agent-1"\nsite = "A12345"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[secrets]\npseudonym_secret_file = "{secret}"\nsigning_key_file = "{tmp_path / "key.pem"}"\n'
        f'api_token_file = "{tmp_path / "api-token"}"\n'
        f'core_public_key_hex = "{"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"}"\n'
        f'[tls]\nca_file = "{tmp_path / "ca.pem"}"\ncert_file = "{tmp_path / "cert.pem"}"\n'
        f'key_file = "{tmp_path / "tls-key.pem"}"\n'
    )
    return config


def test_keygen_writes_private_key_0600_and_signs(tmp_path: Path) -> None:
    public = generate_signing_key(tmp_path / "k.pem")
    signer = load_agent_signer(tmp_path / "k.pem", "agent-1")

    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert signer.public_key_bytes == public
    assert sign_batch(signer, [b"\xc3\x01" + bytes(20)], first_seq=1)


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "k.pem")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_signing_key(tmp_path / "k.pem")


def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET.hex())
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_pseudonymiser(path)


def test_the_agent_pseudonymises_with_its_sites_secret_which_only_the_core_translates(tmp_path: Path) -> None:
    """Issue 12 item 11: the agent's file holds its site's secret; its pseudonym is the site's, never the national
    one, and the core (holding the national secret) opens it to the national pseudonym."""
    path = tmp_path / "secret"
    path.write_text(site_secret(SECRET, "A81001").hex())
    path.chmod(0o600)

    key = load_pseudonymiser(path)(VALID_NHS)

    assert key == CorePseudonyms(SECRET).for_site("A81001", VALID_NHS) != patient_key(SECRET, VALID_NHS)
    assert CorePseudonyms(SECRET).to_national("A81001", key) == patient_key(SECRET, VALID_NHS)


def test_a_secret_that_is_not_a_site_secret_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(os.urandom(48).hex())  # a (longer) national-style secret: not a 32-byte site secret
    path.chmod(0o600)

    with pytest.raises(ConfigError, match=r"a site secret is 32 .*keys site-secret --site ODS"):
        load_pseudonymiser(path)


def test_cli_submit_enqueues_durably_and_status_counts_it(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    event = {
        "type": "objection",
        "nhs_number": VALID_NHS,
        "payload": {"kind": "TYPE1", "action": "REGISTER"},
    }
    runner = CliRunner()
    submitted = runner.invoke(cli, ["submit", "--config", str(config), "-"], input=json.dumps(event))
    status = runner.invoke(cli, ["status", "--config", str(config)])

    assert submitted.exit_code == 0, submitted.output
    assert json.loads(submitted.output)["receipts"][0]["seq"] == 1
    assert json.loads(status.output)["pending"] == 1


def test_cli_submit_invalid_event_exits_nonzero_with_reason(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    result = CliRunner().invoke(cli, ["submit", "--config", str(config), "-"], input='{"type": "nope"}')

    assert result.exit_code == 1
    assert "UNKNOWN_EVENT_TYPE" in result.output


def test_pure_modules_import_no_io_libraries() -> None:
    code = (
        "import sys, edge_agent.submission, edge_agent.config;"
        "print(sorted(m for m in ('aiokafka', 'aiomqtt', 'sqlite3', 'aiohttp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)

    assert out.stdout.strip() == "[]"


def test_package_exports_are_declared_and_sorted() -> None:
    import edge_agent

    assert edge_agent.__all__ == sorted(edge_agent.__all__, key=lambda n: (n[0].islower(), n))
    assert all(hasattr(edge_agent, name) for name in edge_agent.__all__)


def test_every_lazy_export_resolves() -> None:
    import edge_agent

    assert set(edge_agent._LAZY) == set(edge_agent.__all__)
