"""Raw aiokafka pass-through: consume and produce the same bytes, no processing, the core's batching.

Run as its own process (so its CPU is its own):

    .venv/bin/python -m loadtests.passthrough --bootstrap 127.0.0.1:29792 --source T1 --sink T2 --records N
        [--ca-file CA --cert-file CERT --key-file KEY]   # mutual TLS; plaintext without them

Prints one JSON line: records, seconds, records_per_s, cpu_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from broker.stage import StageConfig
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["add_connection_arguments", "connection_args", "connection_from", "main", "pass_through"]


def connection_args(conn: KafkaConnection) -> list[str]:
    """The command-line flags that give this tool ``conn``'s TLS files (none for plaintext)."""
    if conn.security_protocol != "SSL":
        return []
    return ["--ca-file", conn.ca_file, "--cert-file", conn.cert_file, "--key-file", conn.key_file]


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags :func:`connection_args` writes and :func:`connection_from` reads (every bench child tool)."""
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--ca-file", default="", help="mutual TLS: the CA certificate (PEM); omit for plaintext")
    parser.add_argument("--cert-file", default="", help="mutual TLS: this client's certificate (PEM)")
    parser.add_argument("--key-file", default="", help="mutual TLS: its private key (PEM, mode 0600)")


def connection_from(args: argparse.Namespace) -> KafkaConnection:
    """The connection those flags name: mutual TLS with a CA file, else plaintext (the security-cost bench)."""
    if args.ca_file:
        return KafkaConnection(args.bootstrap, "SSL", args.ca_file, args.cert_file, args.key_file)
    return KafkaConnection(args.bootstrap)


async def pass_through(conn: KafkaConnection, source: str, sink: str, records: int, group: str) -> dict[str, float]:
    defaults = StageConfig(conn, group, group)  # the same batching knobs as the core's stages
    consumer = kafka.consumer(
        conn,
        source,
        group_id=group,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = kafka.producer(
        conn,
        enable_idempotence=True,
        acks="all",
        linger_ms=defaults.linger_ms,
        compression_type=defaults.compression,
        max_batch_size=1024 * 1024,
    )
    await consumer.start()
    await producer.start()
    moved = 0
    started = 0.0
    try:
        while moved < records:
            batches = await consumer.getmany(timeout_ms=defaults.poll_timeout_ms, max_records=defaults.max_records)
            if batches and not started:
                started = time.perf_counter()
            for batch in batches.values():
                futures = [await producer.send(sink, r.value, key=r.key) for r in batch]
                await asyncio.gather(*futures)
                moved += len(batch)
            if batches:
                await consumer.commit()
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "records": moved,
        "seconds": round(seconds, 3),
        "records_per_s": round(moved / max(1e-9, seconds), 1),
        "cpu_s": round(time.process_time(), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_connection_arguments(parser)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--group", default="bench-passthrough")
    args = parser.parse_args(argv)
    import uvloop

    conn = connection_from(args)
    result = uvloop.run(pass_through(conn, args.source, args.sink, args.records, args.group))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
