"""The witness process's HTTPS endpoint: mutual TLS from the deployment's CA, allowed principals only,
the C2SP statuses, and a state file that keeps it from cosigning a rollback after a restart."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.keyfile import generate_key_file, load_signer
from broker.audit.note import ALG_COSIGNATURE, ALG_ED25519, NoteSigner
from broker.audit.tlog import sign_checkpoint
from broker.audit.tree import MerkleLog
from broker.audit.witness import WitnessCore
from broker.infra.pki import Pki
from broker.witness import StateFile, WitnessClient, WitnessRefusedError, WitnessServer
from broker.witness.server import server_tls
from consent_io.tls import client_ssl_context

pytestmark = pytest.mark.integration

ORIGIN = "consent-broker.test/witness-https"


class Rig:
    def __init__(self, root: Path) -> None:
        self.pki = Pki(root / "pki")
        self.pki.ensure_ca()
        self.server_files = self.pki.issue("witness-1", server=True)
        self.log_key = NoteSigner(ORIGIN, Ed25519PrivateKey.generate(), ALG_ED25519)
        self.key_file = root / "witness.key"
        self.witness_key = generate_key_file(self.key_file, "witness-1", ALG_COSIGNATURE)
        self.store = StateFile(root / "witness-state.json")
        self.tree = MerkleLog()
        self.server: WitnessServer | None = None
        self.opened: list[WitnessClient] = []

    async def start(self) -> WitnessServer:
        signer = load_signer(self.key_file, "witness-1", ALG_COSIGNATURE, "witness key file")
        core = WitnessCore(signer, {ORIGIN: self.log_key.verifier}, self.store.load())
        self.server = WitnessServer(core, self.store, ["core.api"])
        f = self.server_files
        await self.server.start("127.0.0.1", 0, server_tls(str(self.pki.ca_file), str(f.cert_file), str(f.key_file)))
        return self.server

    def client(self, principal: str) -> WitnessClient:
        files = self.pki.issue(principal)
        tls = client_ssl_context(str(self.pki.ca_file), str(files.cert_file), str(files.key_file))
        assert self.server is not None
        client = WitnessClient(f"https://127.0.0.1:{self.server.port}", self.witness_key.verifier, tls)
        self.opened.append(client)
        return client

    def grow(self, count: int) -> None:
        for _ in range(count):
            self.tree.append(f"entry-{self.tree.size}".encode())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path)
    await rig.start()
    yield rig
    for client in rig.opened:
        await client.close()
    assert rig.server is not None
    await rig.server.stop()


async def test_cosigns_an_extension_and_refuses_rollback_mismatch_and_bad_proof(rig: Rig) -> None:
    api = rig.client("core.api")
    rig.grow(5)
    first = sign_checkpoint(rig.log_key, ORIGIN, 5, rig.tree.root())
    cosig = await api.add_checkpoint(0, (), first)
    assert rig.witness_key.verifier.verify(first.text, cosig) is not None
    rig.grow(3)
    second = sign_checkpoint(rig.log_key, ORIGIN, 8, rig.tree.root())
    with pytest.raises(WitnessRefusedError) as mismatch:
        await api.add_checkpoint(0, (), second)
    assert (mismatch.value.status, mismatch.value.body) == (409, "5\n")
    with pytest.raises(WitnessRefusedError) as bad_proof:
        await api.add_checkpoint(5, (bytes(32),) * 3, second)
    assert bad_proof.value.status == 422
    await api.add_checkpoint(5, rig.tree.consistency_proof(5), second)
    with pytest.raises(WitnessRefusedError) as rollback:
        await api.add_checkpoint(8, (), first)
    assert rollback.value.status == 400
    latest = await api.latest(ORIGIN)
    assert latest is not None and latest.startswith(second.text)


async def test_only_allowed_principals_add_and_a_client_without_certificate_is_refused(rig: Rig) -> None:
    rig.grow(2)
    note = sign_checkpoint(rig.log_key, ORIGIN, 2, rig.tree.root())
    with pytest.raises(WitnessRefusedError) as refused:
        await rig.client("research-hub").add_checkpoint(0, (), note)
    assert refused.value.status == 403
    anonymous = ssl.create_default_context(cafile=str(rig.pki.ca_file))
    assert rig.server is not None
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.post(f"https://127.0.0.1:{rig.server.port}/add-checkpoint", data=b"x", ssl=anonymous)


async def test_state_file_survives_a_restart_so_a_rollback_is_still_refused(rig: Rig) -> None:
    rig.grow(4)
    await rig.client("core.api").add_checkpoint(0, (), sign_checkpoint(rig.log_key, ORIGIN, 4, rig.tree.root()))
    assert rig.server is not None
    await rig.server.stop()
    await rig.start()
    smaller = MerkleLog()
    smaller.append(b"entry-0")
    forged = sign_checkpoint(rig.log_key, ORIGIN, 1, smaller.root())
    with pytest.raises(WitnessRefusedError) as refused:
        await rig.client("core.api").add_checkpoint(0, (), forged)
    assert refused.value.status == 409
    assert refused.value.body == "4\n"
