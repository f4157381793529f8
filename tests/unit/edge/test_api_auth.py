"""The agent's local API refuses callers without the site's token (issue 11: authenticated HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consent_io.secrets import SecretFileError
from edge_agent.api_auth import generate_token_file, load_token, token_middleware


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def client(tmp_path: Path):
    token = generate_token_file(tmp_path / "api-token")
    app = web.Application(middlewares=[token_middleware(load_token(tmp_path / "api-token"))])
    app.add_routes([web.post("/v1/events", _ok), web.get("/v1/health", _ok)])
    async with TestClient(TestServer(app)) as c:
        c.token = token.decode()  # type: ignore[attr-defined]
        yield c


async def test_the_right_token_is_let_through(client) -> None:
    resp = await client.post("/v1/events", headers={"Authorization": f"Bearer {client.token}"})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [(None, "AUTH_MISSING"), ("Bearer wrong", "AUTH_INVALID_TOKEN"), ("Basic eA==", "AUTH_INVALID_TOKEN")],
)
async def test_a_missing_or_wrong_token_is_401_with_a_reason(client, header: str | None, reason: str) -> None:
    headers = {"Authorization": header} if header else {}
    resp = await client.post("/v1/events", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["reason"] == reason
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_health_needs_no_token(client) -> None:
    assert (await client.get("/v1/health")).status == 200


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    generate_token_file(tmp_path / "t")
    (tmp_path / "t").chmod(0o644)
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_token(tmp_path / "t")
