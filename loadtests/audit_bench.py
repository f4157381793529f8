"""Audit transparency log benchmark: appends/s with two witnesses cosigning every checkpoint, checkpoint latency
(from an append's call to the first cosigned checkpoint covering it) and proof sizes; writes bench/audit.json.

    make bench-audit                                    # its own secure stack on 28792/20783
    .venv/bin/python -m loadtests.audit_bench --kafka-port 23592 --mqtt-port 15583 --seconds 20

Method: one fenced appender (transactional producer, core.api principal with its ACLs) on a fresh audit topic,
``--concurrency`` callers appending as fast as they are acknowledged (group commit), two witnesses over mutual
TLS in this process (quorum 2, each fsyncs its state before cosigning). Ceiling in the same run: the same
callers against a Kafka transaction alone (no witnesses, no signing) is not measured here; see bench/decision.json
for the API's own rate, which the audit append sits inside.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from broker.audit import AuditRecord, RecordKind
from broker.audit.appender import AppenderPolicy, AuditAppender
from broker.audit.keyfile import generate_key_file
from broker.audit.note import ALG_COSIGNATURE, ALG_ED25519, parse_note
from broker.audit.witness import WitnessCore
from broker.infra import InfraConfig
from broker.topics import Topic, TopicNames, create_topics
from broker.witness import StateFile, WitnessClient, WitnessServer
from broker.witness.server import server_tls
from consent_io.tls import client_ssl_context
from consent_wire.codes import DataClass, PurposeOfUse
from loadtests.stack import BenchStack

__all__ = ["main"]

AUDIT_KAFKA_PORT = 28792  # below Linux's ephemeral range (see loadtests.stack), apart from the other benches
AUDIT_MQTT_PORT = 20783


def _record(n: int) -> AuditRecord:
    return AuditRecord(RecordKind.DECISION, 1_790_000_000_000 + n, f"patient-{n % 1000}", f"staff-{n}", "RX1", "GP",
                       PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT", state_version=n)  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the bench's stack if needed (outside the event loop: infra runs its own), measure, stop it again."""
    stack = BenchStack.up(InfraConfig(name="bench-audit", kafka_port=args.kafka_port, mqtt_port=args.mqtt_port))
    try:
        return asyncio.run(_measure(args, stack))
    finally:
        if stack.started_here:
            stack.infra.down()


async def _measure(args: argparse.Namespace, stack: BenchStack) -> dict[str, Any]:
    deployment = stack.deployment
    prefix, app_id = f"ba{uuid.uuid4().hex[:8]}", "bench-audit-core"
    names = TopicNames(prefix)
    await create_topics(stack.operator(), names, replication=1, partitions={Topic.AUDIT: 1})
    await deployment.grant(prefix, app_id)
    pki = deployment.infra.pki
    api = pki.issue("core.api")
    tls = client_ssl_context(str(pki.ca_file), str(api.cert_file), str(api.key_file))
    origin = f"{app_id}/{names.audit}"
    with tempfile.TemporaryDirectory() as tmp:
        log_key = generate_key_file(Path(tmp) / "log.key", origin, ALG_ED25519)
        servers, clients = [], []
        for i in range(args.witnesses):
            files = pki.issue(f"bench-witness-{i}", server=True)
            signer = generate_key_file(Path(tmp) / f"w{i}.key", f"bench-witness-{i}", ALG_COSIGNATURE)
            store = StateFile(Path(tmp) / f"w{i}.json")
            server = WitnessServer(WitnessCore(signer, {origin: log_key.verifier}, {}), store, ["core.api"])
            await server.start("127.0.0.1", 0, server_tls(str(pki.ca_file), str(files.cert_file), str(files.key_file)))
            servers.append(server)
            clients.append(WitnessClient(f"https://127.0.0.1:{server.port}", signer.verifier, tls))
        stage = f"{app_id}.api"
        policy = AppenderPolicy(origin, log_key, tuple(clients), len(clients), f"{stage}.audit", stage)
        appender = AuditAppender(deployment.stage_kafka("api"), names.audit, policy)
        await appender.start(standby_wait_s=60)
        try:
            result = await _load(args, appender)
        finally:
            await appender.stop()
            for s in servers:
                await s.stop()
    return result


async def _load(args: argparse.Namespace, appender: AuditAppender) -> dict[str, Any]:
    submitted: dict[int, float] = {}
    acked: list[float] = []
    cosign_latency: list[float] = []
    checkpoints: list[tuple[int, str]] = []
    counter = iter(range(10**9))
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            n = next(counter)
            t0 = time.perf_counter()
            entry = await appender.append(_record(n))
            submitted[entry.index] = t0
            acked.append(time.perf_counter() - t0)

    async def watch() -> None:
        seen = 0
        while True:
            size = appender.cosigned_size
            if size > seen:
                now = time.perf_counter()
                cosign_latency.extend(now - submitted[i] for i in range(seen, size) if i in submitted)
                proof = appender.proof(0)
                if proof is not None:
                    checkpoints.append((size, proof.checkpoint))
                seen = size
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    callers = [asyncio.create_task(caller()) for _ in range(args.concurrency)]
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*callers)
    elapsed = time.perf_counter() - started
    deadline = time.perf_counter() + 30
    while appender.cosigned_size < appender.next_index and time.perf_counter() < deadline:  # noqa: ASYNC110 - polls progress
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    watcher.cancel()
    size = appender.next_index
    inclusion = appender.proof(size // 2)
    note = checkpoints[-1][1] if checkpoints else ""
    consistency = appender._tree.consistency_proof(checkpoints[0][0], size) if checkpoints else ()
    return {
        "method": "one fenced appender (Kafka transactions, mTLS, ACLs), group commit, "
        f"{args.witnesses} witnesses over mutual TLS, quorum {args.witnesses}",
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "appends": len(acked),
        "appends_per_s": round(len(acked) / elapsed, 1),
        "append_ack_ms": {"p50": round(_pct(acked, 0.5) * 1000, 1), "p99": round(_pct(acked, 0.99) * 1000, 1)},
        "checkpoints_cosigned": len(checkpoints),
        "entries_per_checkpoint": round(len(acked) / max(1, len(checkpoints)), 1),
        "checkpoint_latency_ms": {
            "p50": round(_pct(cosign_latency, 0.5) * 1000, 1),
            "p99": round(_pct(cosign_latency, 0.99) * 1000, 1),
            "mean": round(statistics.fmean(cosign_latency) * 1000, 1) if cosign_latency else 0.0,
        },
        "proof_bytes": {
            "tree_size": size,
            "inclusion_hashes": len(inclusion.hashes) if inclusion else 0,
            "inclusion_bytes": 32 * len(inclusion.hashes) if inclusion else 0,
            "consistency_hashes_first_to_last_checkpoint": len(consistency),
            "consistency_bytes": 32 * len(consistency),
            "cosigned_checkpoint_note_bytes": len(note.encode()),
            "signatures_on_checkpoint": len(parse_note(note).signatures) if note else 0,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kafka-port", type=int, default=AUDIT_KAFKA_PORT)
    parser.add_argument("--mqtt-port", type=int, default=AUDIT_MQTT_PORT)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--witnesses", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/audit.json"))
    args = parser.parse_args()
    result = run(args)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
