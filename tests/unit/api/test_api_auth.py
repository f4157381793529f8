"""The core API's door (issue 11): authority comes from the client's credential, never from the body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api import create_app
from broker.api.handlers import ROUTES
from broker.auth import ASSERTION_TYPE, ClientRegistry, TokenService, make_client_assertion
from tests.unit.api.backend import NHS, NOW_MS, READER, MemoryBackend
from tests.unit.api.test_api import decision_body
from tests.unit.api.test_openapi import SPEC

TOKEN_URL = "https://core.test/oauth2/token"
CONSENT = f"/v1/patients/{NHS}/consent{READER.replace('GP', 'CONSULTANT')}"  # a role the client is registered for


@dataclass
class Door:
    client: TestClient  # type: ignore[type-arg]
    backend: MemoryBackend
    keys: dict[str, ec.EllipticCurvePrivateKey]

    async def token(self, client_id: str, scope: str = "") -> str:
        assertion = make_client_assertion(client_id, self.keys[client_id], TOKEN_URL, NOW_MS // 1000)
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
        form |= {"client_assertion": assertion} | ({"scope": scope} if scope else {})
        resp = await self.client.post("/oauth2/token", data=form)
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["access_token"])


def _entry(client_id: str, org: str, scopes: list[str], key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"id": client_id, "organisation": org, "roles": ["CONSULTANT"], "scopes": scopes, "jwk": jwk}


@pytest.fixture
async def door() -> AsyncIterator[Door]:
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("rx1", "reporter")}
    registry = ClientRegistry.from_data(
        {
            "client": [
                _entry("rx1", "RX1", ["decisions", "patient.read"], keys["rx1"]),
                _entry("reporter", "NHSE", ["reports"], keys["reporter"]),
            ]
        }
    )
    backend = MemoryBackend()
    app = create_app(backend, TokenService(registry, Ed25519PrivateKey.generate(), TOKEN_URL))
    async with TestClient(TestServer(app)) as client:
        yield Door(client, backend, keys)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _refused(resp: Any, status: int, reason: str) -> None:
    assert resp.status == status, await resp.text()
    assert (await resp.json())["reason"] == reason


async def test_an_unauthenticated_decision_is_401_and_nothing_is_recorded(door: Door) -> None:
    await _refused(await door.client.post("/v1/decisions", json=decision_body()), 401, "AUTH_MISSING")
    bad = _bearer("not-a-token")
    await _refused(
        await door.client.post("/v1/decisions", json=decision_body(), headers=bad), 401, "AUTH_INVALID_TOKEN"
    )
    assert len(door.backend.log.entries) == 0


async def test_a_client_asks_as_its_own_organisation_only(door: Door) -> None:
    token = await door.token("rx1")
    ok = await door.client.post("/v1/decisions", json=decision_body(), headers=_bearer(token))
    assert ok.status == 200
    evil = decision_body()
    evil["requester"] = {**evil["requester"], "organisation": "EVIL", "role": "CONSULTANT"}
    await _refused(await door.client.post("/v1/decisions", json=evil, headers=_bearer(token)), 403, "AUTH_ORGANISATION")
    other_role = decision_body()
    other_role["requester"] = {**other_role["requester"], "role": "CALDICOTT_GUARDIAN"}
    resp = await door.client.post("/v1/decisions", json=other_role, headers=_bearer(token))
    await _refused(resp, 403, "AUTH_ROLE")
    assert len(door.backend.log.entries) == 1  # only the permitted request was decided and recorded


async def test_a_patient_read_needs_the_patient_read_scope(door: Door) -> None:
    narrow = await door.token("rx1", scope="decisions")
    resp = await door.client.get(CONSENT, headers=_bearer(narrow))
    await _refused(resp, 403, "AUTH_SCOPE")
    reporter = await door.token("reporter")
    resp = await door.client.get(f"/v1/patients/{NHS}/accesses{READER}", headers=_bearer(reporter))
    await _refused(resp, 403, "AUTH_SCOPE")
    assert len(door.backend.log.entries) == 0
    full = await door.token("rx1")
    resp = await door.client.get(CONSENT, headers=_bearer(full))
    assert resp.status == 200
    assert len(door.backend.log.entries) == 1  # the read, recorded with the client


async def test_a_future_as_at_is_refused(door: Door) -> None:
    token = await door.token("rx1")
    body = {**decision_body(), "as_at": NOW_MS + 60_000}
    await _refused(await door.client.post("/v1/decisions", json=body, headers=_bearer(token)), 400, "AS_AT_IN_FUTURE")


async def test_a_replayed_assertion_gets_no_second_token(door: Door) -> None:
    assertion = make_client_assertion("rx1", door.keys["rx1"], TOKEN_URL, NOW_MS // 1000)
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    assert (await door.client.post("/oauth2/token", data=form)).status == 200
    await _refused(await door.client.post("/oauth2/token", data=form), 401, "AUTH_REPLAYED")


def test_every_route_declares_in_openapi_the_scope_it_enforces() -> None:
    for route in ROUTES:
        op = SPEC["paths"][route.path][route.method.lower()]
        declared = op.get("security", SPEC["security"])
        expected = [] if route.scope is None else [{"bearer": [route.scope.value]}]
        assert declared == expected, route.path
