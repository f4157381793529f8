"""CDS Hooks on the agent (issue 17): the core's consent-consult hook answered offline from the replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cds_client import card, consult
from tests.fakes import VALID_NHS
from tests.unit.edge.test_http_api import Api, start_api

PATH = "/cds-services/patient-consent-consult"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = await start_api(tmp_path)
    yield a
    await a.client.close()
    await a.outbox.close()
    await a.replica.close()


async def test_discovery_behind_the_site_token(api: Api) -> None:
    resp = await api.client.get("/cds-services")
    assert [s["id"] for s in (await resp.json())["services"]] == ["patient-consent-consult"]
    resp = await api.client.get("/cds-services", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401


async def test_an_unreplicated_patient_gets_offline_cards(api: Api) -> None:
    resp = await api.client.post(PATH, json=consult(VALID_NHS, organisation="A12345"))
    c = card(await resp.json())
    assert (resp.status, c["summary"], c["extension"]["offline"], c["extension"]["as_at_ms"]) == (
        200,
        "CONSENT_PERMIT",
        True,
        None,
    )
    resp = await api.client.post(PATH, json=consult(VALID_NHS, purpose="HRESCH", care=False))
    assert card(await resp.json())["summary"] == "NO_CONSENT"


async def test_a_malformed_consult_is_400(api: Api) -> None:
    resp = await api.client.post(PATH, json={"hook": "patient-consent-consult"})
    assert (resp.status, (await resp.json())["reason"]) == (400, "BAD_REQUEST")
