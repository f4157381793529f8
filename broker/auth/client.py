"""The client side of the API's door: fetch and cache access tokens with a private_key_jwt assertion.

Used by the demo, the tests and the load tests, and a model for integrators: sign a fresh assertion per token
request, keep the token until shortly before it expires, send it as ``Authorization: Bearer``.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization

from broker.auth.tokens import ASSERTION_TYPE, make_client_assertion
from consent_io.secrets import read_secret

__all__ = ["ApiCredentials", "TokenSource", "client_tls"]

REFRESH_BEFORE_S = 30  # fetch a new token this long before the current one expires


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    client_id: str
    key_file: Path  # the client's private key (PEM, mode 0600)
    token_url: str  # https://<core>/oauth2/token; also the assertion's audience

    def private_key(self) -> Any:
        return serialization.load_pem_private_key(read_secret(self.key_file, "API client key"), password=None)


def client_tls(ca_file: str | Path) -> ssl.SSLContext:
    """A TLS client context trusting only the deployment's CA (hostname checked)."""
    return ssl.create_default_context(cafile=str(ca_file))


@dataclass
class TokenSource:
    credentials: ApiCredentials
    scope: str = ""
    _token: str = ""
    _expires_at: float = 0.0
    _key: Any = field(default=None, repr=False)

    async def headers(self, session: aiohttp.ClientSession, tls: ssl.SSLContext | None = None) -> dict[str, str]:
        if not self._token or time.time() > self._expires_at - REFRESH_BEFORE_S:
            await self._fetch(session, tls)
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self, session: aiohttp.ClientSession, tls: ssl.SSLContext | None) -> None:
        if self._key is None:
            self._key = self.credentials.private_key()
        c = self.credentials
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": make_client_assertion(c.client_id, self._key, c.token_url, int(time.time())),
        }
        if self.scope:
            form["scope"] = self.scope
        async with session.post(c.token_url, data=form, ssl=tls if tls is not None else True) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise PermissionError(
                    f"token request refused: {resp.status} {body.get('reason')}: {body.get('message')}"
                )
        self._token = str(body["access_token"])
        self._expires_at = time.time() + int(body["expires_in"])
