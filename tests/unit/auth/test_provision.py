from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.auth import ASSERTION_TYPE, ClientRegistry, RegistryError, TokenService, make_client_assertion
from broker.auth.client import ApiCredentials
from broker.auth.provision import add_client, new_token_key, remove_client

URL = "https://core/oauth2/token"


def test_an_added_client_can_get_a_token_and_a_removed_one_cannot(tmp_path: Path) -> None:
    registry, key = tmp_path / "clients.toml", tmp_path / "rx1.pem"
    add_client(registry, "rx1-ehr", "RX1", ["CONSULTANT"], ["decisions"], key)
    assert key.stat().st_mode & 0o777 == 0o600
    creds = ApiCredentials("rx1-ehr", key, URL)
    service = TokenService(ClientRegistry.load(registry), Ed25519PrivateKey.generate(), URL)
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    token = service.exchange(
        form | {"client_assertion": make_client_assertion("rx1-ehr", creds.private_key(), URL, 100)}, 100
    )
    assert token.scopes == ("decisions",)
    with pytest.raises(RegistryError, match="already registered"):
        add_client(registry, "rx1-ehr", "RX1", [], [], tmp_path / "again.pem")
    assert remove_client(registry, "rx1-ehr")
    assert ClientRegistry.load(registry).get("rx1-ehr") is None


def test_a_token_key_is_private_hex(tmp_path: Path) -> None:
    new_token_key(tmp_path / "token.key")
    assert (tmp_path / "token.key").stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex((tmp_path / "token.key").read_text())) == 32
