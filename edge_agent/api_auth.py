"""The agent's local API is for the site's clinical system only: a bearer token read from a 0600 file.

On a shared host any local user can reach a loopback port; the token (32 random bytes, hex, in a file only the
agent's and the clinical system's account can read) is what tells the clinical system apart. Compared in
constant time. ``/v1/health`` stays open (liveness probes carry no data and change nothing).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from consent_io.secrets import read_secret, write_secret

__all__ = ["MIN_TOKEN_BYTES", "OPEN_PATHS", "generate_token_file", "load_token", "token_middleware"]

MIN_TOKEN_BYTES = 32  # 128 bits of entropy as hex is 32 characters; we generate 256 bits (64 hex characters)
OPEN_PATHS = frozenset({"/v1/health"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_token(path: str | Path) -> bytes:
    return read_secret(path, "edge agent API token", min_bytes=MIN_TOKEN_BYTES)


def generate_token_file(path: str | Path) -> bytes:
    """Write a fresh token (mode 0600) and return it; the clinical system's integration reads the same file."""
    token = secrets.token_hex(32).encode()
    write_secret(path, token + b"\n")
    return token


def _refuse(reason: str, message: str) -> web.Response:
    body = orjson.dumps({"reason": reason, "message": message})
    return web.Response(body=body, status=401, content_type="application/json", headers={"WWW-Authenticate": "Bearer"})


def token_middleware(token: bytes) -> Middleware:
    expected = b"Bearer " + token

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "")
        if not given:
            return _refuse("AUTH_MISSING", "send the site's API token as 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
            return _refuse("AUTH_INVALID_TOKEN", "the API token is not this agent's; read it from the token file")
        return await handler(request)

    return check
