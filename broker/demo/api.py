"""The demo's calls to the core's API: HTTPS verified against the deployment CA, one OAuth client per
organisation (an access token fetched with a private_key_jwt assertion, cached until shortly before expiry)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from broker.auth.client import TokenSource, client_tls
from broker.infra.local import ApiClientSpec, LocalDeployment

__all__ = ["CoreApi"]


@dataclass
class CoreApi:
    session: aiohttp.ClientSession
    url: str  # https://127.0.0.1:<port>
    tls: ssl.SSLContext | None  # trusts only the deployment's CA; None on an insecure (debugging) stack
    tokens: dict[str, TokenSource] = field(default_factory=dict)  # organisation -> its client's tokens

    @classmethod
    def connect(
        cls,
        session: aiohttp.ClientSession,
        deployment: LocalDeployment,
        port: int,
        clients: tuple[ApiClientSpec, ...],
        keys: dict[str, Path],
    ) -> CoreApi:
        tls = client_tls(deployment.ca_file) if deployment.secure else None
        tokens = {
            c.organisation: TokenSource(deployment.api_credentials(c.client_id, keys[c.client_id], port))
            for c in clients
            if c.client_id in keys
        }
        return cls(session, deployment.api_url(port), tls, tokens)

    async def call(self, method: str, path: str, credential: str | None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """``(status, JSON body)`` of one call with the access token of ``credential``'s client (None: no token)."""
        headers: dict[str, str] = {}
        if credential is not None and credential in self.tokens:
            headers = await self.tokens[credential].headers(self.session, self.tls)
        tls: ssl.SSLContext | bool = self.tls if self.tls is not None else True
        async with self.session.request(method, self.url + path, headers=headers, ssl=tls, **kwargs) as response:
            body = await response.json()
            return response.status, body if isinstance(body, dict) else {"items": body}
