"""``consent-broker keys root|register|rotate|revoke|list`` on the real (secure) stack (issue 12 items 5 and 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from broker.cli import cli
from broker.infra.local import LocalDeployment
from broker.topics import TopicNames
from consent_wire.dsse import AgentSigner, key_id

pytestmark = pytest.mark.integration


def _keys(deployment: LocalDeployment, topics: TopicNames, *args: str) -> str:
    config = deployment.infra.config
    kafka = ["--bootstrap", config.bootstrap, "--tls-dir", str(config.pki_dir / "operator"), "--prefix", topics.prefix]
    result = CliRunner().invoke(cli, ["keys", args[0], *kafka, *args[1:]])
    assert result.exit_code == 0, result.output
    return result.output


def _pem(signer: AgentSigner, path: Path) -> Path:
    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def test_operator_registers_rotates_and_revokes_with_site_and_capabilities(
    deployment: LocalDeployment, topic_names: TopicNames, tmp_path: Path
) -> None:
    root_file = tmp_path / "root.key"
    made = CliRunner().invoke(cli, ["keys", "root", "--out", str(root_file)])
    assert made.exit_code == 0, made.output
    root_public = made.output.strip()
    assert root_file.stat().st_mode & 0o777 == 0o600
    old, new = AgentSigner.generate("gp-1"), AgentSigner.generate("gp-1")
    root = ["--root-key", str(root_file)]

    _keys(deployment, topic_names, "register", *root, "--agent", "gp-1", "--public-key", old.public_key_bytes.hex(),
          "--site", "A81001", "--capability", "CONSENT", "--effective-ms", "1000")  # fmt: skip
    _keys(deployment, topic_names, "rotate", *root, "--agent", "gp-1", "--old-key", str(_pem(old, tmp_path / "o.pem")),
          "--public-key", new.public_key_bytes.hex(), "--site", "A81001", "--capability", "CONSENT",
          "--capability", "TYPE1_OBJECTION", "--effective-ms", "5000")  # fmt: skip
    _keys(deployment, topic_names, "revoke", *root, "--agent", "gp-1", "--public-key", new.public_key_bytes.hex(),
          "--effective-ms", "9000")  # fmt: skip
    listed = _keys(deployment, topic_names, "list", "--root-public-key", root_public).splitlines()

    assert listed == [
        f"gp-1\t{key_id(old.public_key_bytes)}\tfrom=1000\tuntil=5000\trevoked=-\tsite=A81001\tcapabilities=CONSENT",
        f"gp-1\t{key_id(new.public_key_bytes)}\tfrom=5000\tuntil=-\trevoked=9000\tsite=A81001\t"
        "capabilities=CONSENT,TYPE1_OBJECTION",
    ]


def test_type1_capability_for_a_non_practice_site_is_refused_before_anything_is_published(
    deployment: LocalDeployment, topic_names: TopicNames, tmp_path: Path
) -> None:
    root_file = tmp_path / "root.key"
    assert CliRunner().invoke(cli, ["keys", "root", "--out", str(root_file)]).exit_code == 0
    config = deployment.infra.config
    result = CliRunner().invoke(
        cli,
        ["keys", "register", "--bootstrap", config.bootstrap, "--tls-dir", str(config.pki_dir / "operator"),
         "--prefix", topic_names.prefix, "--root-key", str(root_file), "--agent", "home-1",
         "--public-key", AgentSigner.generate("home-1").public_key_bytes.hex(), "--site", "VM1001",
         "--capability", "TYPE1_OBJECTION"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "INVALID_KEY_EVENT" in result.output and "only for a GP practice" in result.output
