"""The appender's side of the witness protocol: send ``add-checkpoint``, get a cosignature line back."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from broker.audit.errors import AuditError
from broker.audit.note import NoteSignature, SignedNote, Verifier, parse_note
from broker.audit.witness import add_checkpoint_body

__all__ = ["WitnessClient", "WitnessRefusedError"]

_TIMEOUT_S = 10.0  # a witness fsyncs one small file per request; 10 s covers a slow disk


class WitnessRefusedError(AuditError):
    """The witness answered something else than a cosignature (status and body kept)."""

    reason = "WITNESS_REFUSED"

    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"witness {url} answered {status}: {body.strip()[:200]}")
        self.status, self.body = status, body


@dataclass
class WitnessClient:
    """One witness; keeps one HTTPS session (keep-alive: no TLS handshake per checkpoint) until :meth:`close`."""

    url: str  # https://host:port
    key: Verifier  # the witness's cosignature key
    tls: ssl.SSLContext | None
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def add_checkpoint(self, old_size: int, proof: tuple[bytes, ...], note: SignedNote) -> NoteSignature:
        """The witness's cosignature of ``note``; :class:`WitnessRefusedError` (status 0: unreachable) otherwise."""
        body = add_checkpoint_body(old_size, proof, note.to_text())
        status, text = await self._call("POST", "/add-checkpoint", data=body)
        if status != 200:
            raise WitnessRefusedError(self.url, status, text)
        signatures = parse_note(note.text + "\n" + text).signatures
        good = [s for s in signatures if self.key.verify(note.text, s) is not None]
        if not good:
            raise WitnessRefusedError(self.url, 200, "no valid cosignature by the pinned witness key")
        return good[0]

    async def latest(self, origin: str) -> str | None:
        """The latest checkpoint the witness cosigned for ``origin`` (None: none yet)."""
        status, text = await self._call("GET", "/checkpoint", params={"origin": origin})
        if status == 404:
            return None
        if status != 200:
            raise WitnessRefusedError(self.url, status, text)
        return text

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        ssl_arg: ssl.SSLContext | bool = self.tls if self.tls is not None else False
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S))
        try:
            async with self._session.request(method, f"{self.url}{path}", ssl=ssl_arg, **kwargs) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WitnessRefusedError(self.url, 0, f"unreachable: {exc!r}") from exc
