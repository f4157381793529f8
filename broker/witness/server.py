"""The witness over HTTPS (I/O shell around :class:`broker.audit.witness.WitnessCore`).

Routes (C2SP tlog-witness, plus one read for auditors):

    POST /add-checkpoint           cosign a checkpoint (body and statuses: :mod:`broker.audit.witness`)
    GET  /checkpoint?origin=<o>    the latest checkpoint this witness cosigned for ``o`` (404 if none)

Authentication is mutual TLS with the deployment's CA (as for Kafka and Mosquitto): the client's
certificate CN is its principal, and only the principals given in ``allowed`` (the log's appenders)
may add checkpoints; any certificate of the CA may read. The new state is fsynced to the state file
before the cosignature is sent, so a crash never lets the witness forget what it signed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import Counter

from broker.audit.witness import WitnessCore
from broker.witness.store import StateFile

__all__ = ["WitnessServer", "server_tls"]

log = logging.getLogger(__name__)

# What the deploy/prometheus alert AuditWitnessDisagreement watches: a checkpoint this witness refused because
# it contradicts what it holds (422 a consistency proof that does not verify: a rewrite or a fork; 400 a
# rollback or a malformed request; 403 not signed by the log's key). 409 (old size mismatch) is the protocol's
# normal resynchronisation and is not counted.
DISAGREEMENTS = Counter(
    "audit_witness_disagreements",
    "Checkpoints the witness refused as inconsistent with the one it holds, by HTTP status",
    ["status"],
)
for _status in ("400", "403", "422"):
    DISAGREEMENTS.labels(_status)  # every series exists at 0, so the first refusal is an increase

_MAX_BODY = 64 * 1024  # a checkpoint and a proof of 63 hashes take under 4 KiB


def server_tls(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS 1.2+ that requires a client certificate issued by ``ca_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert_file, key_file)
    return context


def _principal(request: web.Request) -> str | None:
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class WitnessServer:
    def __init__(self, core: WitnessCore, store: StateFile, allowed: Iterable[str], *, insecure: bool = False) -> None:
        self.core, self.store, self.allowed = core, store, frozenset(allowed)
        self.insecure = insecure  # tests of the pure HTTP mapping only; the command never sets it
        self._lock = asyncio.Lock()  # one add-checkpoint at a time: check, persist, answer
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/add-checkpoint", self._add)
        app.router.add_get("/checkpoint", self._latest)
        return app

    async def _add(self, request: web.Request) -> web.Response:
        who = _principal(request)
        if not self.insecure and who not in self.allowed:
            log.warning("witness refused add-checkpoint principal=%s", who)
            return web.Response(status=403, text="this principal may not add checkpoints\n")
        body = await request.read()
        async with self._lock:
            answer = self.core.add_checkpoint(body, int(time.time()))
            if answer.updated is not None:
                state = {**self.core.state, answer.origin: answer.updated}
                await asyncio.to_thread(self.store.save, state)
                self.core.adopt(answer)
        if answer.status in (400, 403, 422):
            DISAGREEMENTS.labels(str(answer.status)).inc()
            log.warning("witness refused a checkpoint status=%d origin=%s", answer.status, answer.origin)
        log.info("witness add-checkpoint status=%d origin=%s", answer.status, answer.origin)
        return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type.split(";")[0])

    async def _latest(self, request: web.Request) -> web.Response:
        held = self.core.state.get(request.query.get("origin", ""))
        if held is None:
            return web.Response(status=404, text="no checkpoint cosigned for this origin\n")
        return web.Response(text=held.note, content_type="text/plain")

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=tls).start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        log.info("witness listening host=%s port=%d tls=%s", host, self.port, tls is not None)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
