"""The quix-streams peer (issue 18): the verifier's and the reconciler's work, with the product's own pure
functions, inside quix-streams (librdkafka, exactly-once, RocksDB state with changelog topics).

Same broker, same input topic, same TLS as the product's stage; what differs is the stream processor around
the pure core. Per message the peer loads the key's state from quix's store into the product's pure core
(:class:`broker.verifier.VerifierCore` per agent, :class:`consent_rules.reconcile.Reconciler` per patient),
processes it, stores the new state and emits the outputs (verified events keyed by patient; state records).
Dead letters are counted, not routed (the bench's input has none). Bench-only: ``pip install .[bench]``.

One stage per process:

    .venv/bin/python -m loadtests.peers --stage verifier --bootstrap B --source INGRESS --sink EVENTS \\
        --keys KEYS --root-key-hex HEX --records N [--ca-file CA --cert-file CERT --key-file KEY]

``--records`` counts input records (ingress batches for the verifier, events for the reconciler). Prints one
JSON line: stage, records, outputs, seconds (first record processed to the app stopped after its last
commit), events_per_s (events through the stage: outputs for the verifier, inputs for the reconciler), cpu_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.keys_follower import KeysFollower
from broker.verifier import VerifierCore
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_rules.reconcile import Outcome, Reconciler
from consent_wire.errors import WireError
from consent_wire.keys import KeyRegistry
from consent_wire.signing import encode_verified_event, verified_event_payload
from loadtests.agents import BENCH_PSEUDONYMS
from loadtests.passthrough import add_connection_arguments, connection_args, connection_from

__all__ = ["PeerResult", "main", "peer_perf"]

TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class PeerResult:
    stage: str
    records: int
    outputs: int
    seconds: float
    events_per_s: float
    cpu_s: float


async def _registry(conn: KafkaConnection, keys_topic: str, root_hex: str) -> KeyRegistry:
    registry = KeyRegistry(Ed25519PublicKey.from_public_bytes(bytes.fromhex(root_hex)))
    follower = KeysFollower(kafka.KafkaTopicReader(conn, keys_topic, partitions=[0]), registry)
    await follower.start()
    await follower.stop()
    return registry


def _connection_config(conn: KafkaConnection) -> Any:
    from quixstreams.kafka.configuration import ConnectionConfig

    if conn.security_protocol != "SSL":
        return ConnectionConfig(bootstrap_servers=conn.bootstrap)
    return ConnectionConfig(
        bootstrap_servers=conn.bootstrap,
        security_protocol="ssl",
        ssl_ca_location=conn.ca_file,
        ssl_certificate_location=conn.cert_file,
        ssl_key_location=conn.key_file,
    )


def run_peer(
    conn: KafkaConnection,
    stage: str,
    source: str,
    sink: str,
    records: int,
    group: str,
    registry: KeyRegistry | None,
    commit_interval_s: float,
) -> PeerResult:
    from quixstreams import Application, message_context
    from quixstreams.models.serializers.simple_types import BytesSerializer

    class PairValue(BytesSerializer):
        """The output value is the second of a (key, value) pair; the key is taken by ``to_topic``."""

        def __call__(self, value: Any, ctx: Any) -> bytes:
            return bytes(value[1])

    state_dir = tempfile.mkdtemp(prefix="consent-peer-")
    app = Application(
        broker_address=_connection_config(conn),
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=commit_interval_s,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    source_topic = app.topic(source, key_deserializer="bytes", value_deserializer="bytes")
    sink_topic = app.topic(sink, key_serializer="bytes", value_serializer=PairValue())
    counts = {"in": 0, "out": 0, "rejected": 0}
    first = [0.0]

    def seen() -> None:
        if not first[0]:
            first[0] = time.perf_counter()
        counts["in"] += 1
        if counts["in"] >= records:
            app.stop()

    # the same work as the product's verifier, pseudonym translation included (the stacks' national secret):
    # each event's site pseudonym opened and re-keyed nationally (broker.verifier, issue 12 item 11)
    verifier = VerifierCore(registry, pseudonyms=BENCH_PSEUDONYMS) if registry is not None else None
    reconciler = Reconciler()

    def verify(value: bytes, key: bytes, timestamp: int, headers: Any, state: Any) -> list[tuple[bytes, bytes]]:
        assert verifier is not None
        agent = key.decode()
        verifier.forget({agent})
        saved = state.get("cursor")
        if saved is not None:
            verifier.restore(saved.encode())
        result = verifier.process(value, message_context().offset, timestamp)
        if agent in result.changed and agent in verifier.cursors:
            state.set("cursor", verifier.cursors[agent].to_bytes().decode())  # quix stores JSON values: text
        counts["rejected"] += len(result.rejected)
        out = [
            ((ve.event.patient_key or f"site:{ve.event.site}").encode(), encode_verified_event(ve))
            for ve in result.accepted
        ]
        counts["out"] += len(out)
        seen()
        return out

    def reconcile(value: bytes, key: bytes, timestamp: int, headers: Any, state: Any) -> list[tuple[bytes, bytes]]:
        patient = key.decode()
        try:
            event = verified_event_payload(value)
        except WireError:
            counts["rejected"] += 1
            seen()
            return []
        reconciler.forget([patient])
        saved = state.get("state")
        if saved is not None:
            reconciler.restore(patient, saved.encode())
        result = reconciler.process(event, (message_context().partition, message_context().offset))
        out: list[tuple[bytes, bytes]] = []
        if result.outcome in (Outcome.APPLIED, Outcome.QUARANTINED) and result.state is not None:
            data = result.state.to_bytes()
            state.set("state", data.decode())  # canonical JSON: text for quix's JSON state values
            out.append((key, data))
        elif result.outcome is Outcome.REJECTED:
            counts["rejected"] += 1
        counts["out"] += len(out)
        seen()
        return out

    sdf = app.dataframe(source_topic)
    sdf = sdf.apply(verify if stage == "verifier" else reconcile, stateful=True, expand=True, metadata=True)
    sdf.to_topic(sink_topic, key=lambda pair: pair[0])
    try:
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)  # the peer's RocksDB state: scratch, one run's only
    seconds = time.perf_counter() - (first[0] or time.perf_counter())
    events = counts["out"] if stage == "verifier" else counts["in"]
    return PeerResult(
        stage,
        counts["in"],
        counts["out"],
        round(seconds, 3),
        round(events / max(1e-9, seconds), 1),
        round(time.process_time(), 3),
    )


async def peer_perf(
    conn: KafkaConnection,
    stage: str,
    source: str,
    sink: str,
    records: int,
    keys_topic: str = "",
    root_hex: str = "",
    commit_interval_s: float = 0.1,
) -> dict[str, Any]:
    """Run one peer stage in its own process (so its CPU is its own); its JSON result."""
    argv = [
        sys.executable, "-m", "loadtests.peers", "--stage", stage, "--bootstrap", conn.bootstrap,
        *connection_args(conn), "--source", source, "--sink", sink, "--records", str(records),
        "--group", f"bench-peer-{stage}-{time.time_ns()}", "--commit-interval-s", str(commit_interval_s),
    ]  # fmt: skip
    if stage == "verifier":
        argv += ["--keys", keys_topic, "--root-key-hex", root_hex]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines() or [""]
        raise RuntimeError(f"peer {stage} exited {proc.returncode}: {lines[-1][:400]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stage", choices=("verifier", "reconciler"), required=True)
    add_connection_arguments(parser)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--group", default="bench-peer")
    parser.add_argument("--keys", default="", help="the key registry topic (verifier)")
    parser.add_argument("--root-key-hex", default="", help="the operator root public key, hex (verifier)")
    parser.add_argument("--commit-interval-s", type=float, default=0.1, help="quix commit_interval (seconds)")
    args = parser.parse_args(argv)
    conn = connection_from(args)
    registry = asyncio.run(_registry(conn, args.keys, args.root_key_hex)) if args.stage == "verifier" else None
    result = run_peer(
        conn, args.stage, args.source, args.sink, args.records, args.group, registry, args.commit_interval_s
    )
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
