"""One audit appender as its own process, appending records as fast as they are acknowledged (kill -9 test).

argv[1] is a JSON object: bootstrap, ca/cert/key files (core.api), topic, origin, key_file, app_id,
witnesses ([url, vkey]...), name, optionally tree_dir (the tree on files and the resume point there). Prints
``ACTIVE`` once it holds the log and ``RESUMED <size> <records read>`` (size 0: read from the log's start), then
``ACK <accessor_id> <index>`` after each append returned (the moment a caller would get its answer); stops on
SIGTERM.

With ``requests`` (the audit-requests topic, issue 16) it is one of many API instances: its callers write
audit requests (``REQ <accessor_id> <partition> <offset>`` once acknowledged) whether or not it holds the log,
and its appender, once elected, moves every instance's requests into the log. SIGUSR1 stops the callers
(``QUIET``); SIGTERM stops the process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import orjson

from broker.audit import AuditRecord, RecordKind
from broker.audit.appender import AppenderPolicy, AuditAppender
from broker.audit.keyfile import load_signer
from broker.audit.note import ALG_ED25519, Verifier
from broker.audit.requests import AuditRequestWriter
from broker.witness import WitnessClient
from consent_io.connection import KafkaConnection
from consent_io.tls import client_ssl_context
from consent_wire.codes import DataClass, PurposeOfUse

_CONCURRENCY = 8  # callers in flight at once: group commits of several entries


async def main(cfg: dict[str, object]) -> None:
    c = {k: str(v) for k, v in cfg.items() if not isinstance(v, list)}
    conn = KafkaConnection(c["bootstrap"], "SSL", ca_file=c["ca"], cert_file=c["cert"], key_file=c["key"])
    tls = client_ssl_context(c["ca"], c["cert"], c["key"])
    witnesses = tuple(WitnessClient(u, Verifier.parse(v), tls) for u, v in cfg["witnesses"])  # type: ignore[attr-defined]
    signer = load_signer(c["key_file"], c["origin"], ALG_ED25519, "audit log key")
    stage = f"{c['app_id']}.api"
    policy = AppenderPolicy(c["origin"], signer, witnesses, len(witnesses), f"{stage}.audit", stage)
    requests = c.get("requests")
    tree_dir = Path(c["tree_dir"]) if "tree_dir" in c else None
    appender = AuditAppender(conn, c["topic"], policy, requests, tree_dir)
    stop, quiet = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, _both, quiet, stop)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, quiet.set)
    if requests is not None:
        await _many_instances(appender, AuditRequestWriter(conn, requests), c["name"], stop, quiet)
        return
    await appender.start()
    print("ACTIVE", flush=True)
    print(f"RESUMED {appender.resumed_at} {appender.restore_records}", flush=True)
    counter = iter(range(10**9))

    async def caller() -> None:
        while not stop.is_set():
            n = next(counter)
            accessor = f"{c['name']}-{n}"
            r = AuditRecord(RecordKind.DECISION, 1_790_000_000_000 + n, f"patient-{n % 7}", accessor, "RX1", "GP",
                            PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT")  # fmt: skip
            entry = await appender.append(r)
            print(f"ACK {accessor} {entry.index}", flush=True)

    tasks = [asyncio.create_task(caller()) for _ in range(_CONCURRENCY)]
    await stop.wait()  # SIGTERM (SIGUSR1 is for the many-instances mode)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await appender.stop()
    print("STOPPED", flush=True)


def _both(*events: asyncio.Event) -> None:
    for event in events:
        event.set()


async def _many_instances(
    appender: AuditAppender, writer: AuditRequestWriter, name: str, stop: asyncio.Event, quiet: asyncio.Event
) -> None:
    await appender.join()
    await writer.start()

    async def hold() -> None:
        await appender.activate()
        print("ACTIVE", flush=True)

    holding = asyncio.create_task(hold())
    counter = iter(range(10**9))

    async def caller() -> None:
        while not (stop.is_set() or quiet.is_set()):
            n = next(counter)
            accessor = f"{name}-{n}"
            r = AuditRecord(RecordKind.DECISION, 1_790_000_000_000 + n, f"patient-{n % 7}", accessor, "RX1", "GP",
                            PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT")  # fmt: skip
            position = await writer.write(r.to_bytes(), r.patient_key)
            print(f"REQ {accessor} {position.partition} {position.offset}", flush=True)

    tasks = [asyncio.create_task(caller()) for _ in range(_CONCURRENCY)]
    await quiet.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("QUIET", flush=True)
    await stop.wait()
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    await writer.stop()
    await appender.stop()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main(orjson.loads(sys.argv[1])))
