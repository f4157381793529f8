"""Two-hop pass-through ceiling (issue 18): source -> middle -> sink through the core's own transactional stage.

The same path as the product (ingress -> events -> state): two processes, one per hop, each a
:class:`broker.stage.TransactionalStage` (one transactional producer per partition, offsets in the transaction,
the commit interval, ``read_committed``) around a logic that copies each record's key and value unchanged,
so the difference to the product is the verifier's and the reconciler's work, nothing else.

One hop, as its own process (the parent, :func:`twohop_perf`, starts both at once):

    .venv/bin/python -m loadtests.twohop --bootstrap B --source T1 --sink T2 --records N --group G [TLS flags]

Prints one JSON line: records, first (epoch seconds of the first record consumed), last (epoch seconds once
every record is committed), cpu_s.

Two measurements use it: the throughput ceiling (:func:`twohop_perf`, a backlog drained as fast as it goes) and
the latency floor (:func:`twohop_latency`, issue 18: records offered at a fixed rate - the bench's half load -
each carrying its send time, read back ``read_committed`` at the sink: the p99 the product's end-to-end p99 at
the same offered load is compared with).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY

from broker.stage import Output, StageConfig, TransactionalStage
from consent_io import kafka
from consent_io.connection import KafkaConnection
from loadtests.latency import LatencyRecorder, LatencySummary
from loadtests.passthrough import add_connection_arguments, connection_args, connection_from

__all__ = ["CopyLogic", "main", "twohop_latency", "twohop_perf"]

TIMEOUT_S = 300.0


class CopyLogic:
    """No processing: each input record's key and value to the sink, same partition (co-partitioned, like ours)."""

    changelog_topic: str | None = None

    def __init__(self, name: str, source: str, sink: str) -> None:
        self.name = name
        self.input_topic = source
        self.sink = sink

    async def prepare(self, polled: Iterable[Sequence[Any]]) -> None:
        return None

    def restore(self, partition: int, key: bytes, value: bytes) -> None:
        return None

    def forget(self, partition: int) -> None:
        return None

    def process(self, partition: int, records: Sequence[Any], now_ms: int) -> list[Output]:
        sink = self.sink
        return [Output(sink, r.value or b"", r.key, partition) for r in records]

    def tick(self, now_ms: int) -> dict[int, list[Output]]:
        return {}

    def size(self) -> int:
        return 0


async def one_hop(conn: KafkaConnection, source: str, sink: str, records: int, group: str) -> dict[str, float]:
    name = f"hop-{group}"
    stage = TransactionalStage(StageConfig(conn, group, group), CopyLogic(name, source, sink))
    stop = asyncio.Event()
    task = asyncio.create_task(stage.run(stop))
    first = 0.0
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:
            moved = REGISTRY.get_sample_value("broker_stage_records_out_total", {"stage": name, "topic": sink}) or 0
            if not first and (REGISTRY.get_sample_value("broker_stage_records_in_total", {"stage": name}) or 0):
                first = time.time()
            if moved >= records:
                break
            if task.done() or time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {moved} of {records} records moved")
            await asyncio.sleep(0.005)
        last = time.time()
    finally:
        stop.set()
        await task
    return {"records": records, "first": first, "last": last, "cpu_s": round(time.process_time(), 3)}


async def _start_hops(
    conn: KafkaConnection, source: str, middle: str, sink: str, records: int
) -> list[asyncio.subprocess.Process]:
    tag = time.time_ns()
    argv = [sys.executable, "-m", "loadtests.twohop", "--bootstrap", conn.bootstrap, *connection_args(conn)]
    hops = []
    for i, (a, b) in enumerate(((source, middle), (middle, sink))):
        hop = ["--source", a, "--sink", b, "--records", str(records), "--group", f"bench-twohop{i}-{tag}"]
        hops.append(await asyncio.create_subprocess_exec(*argv, *hop, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return hops


async def _hop_results(hops: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in hops)), TIMEOUT_S + 60)
    results = []
    for proc, (out, err) in zip(hops, outs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"two-hop exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def twohop_perf(conn: KafkaConnection, source: str, middle: str, sink: str, records: int) -> tuple[float, float]:
    """(records/s from the first record consumed to the last committed on ``sink``, CPU us per record, both hops)."""
    results = await _hop_results(await _start_hops(conn, source, middle, sink, records))
    seconds = results[1]["last"] - results[0]["first"]
    cpu = sum(r["cpu_s"] for r in results)
    return records / max(1e-9, seconds), cpu * 1e6 / max(1, records)


_STAMP = 8  # bytes of send time (ns since the epoch, big-endian) at the start of each record's value
WARM_UP = b"\0" * _STAMP  # a warm-up record (send time 0): proves both hops run before the clock starts
SEND_TICK_S = 0.002


async def twohop_latency(
    conn: KafkaConnection, topics: tuple[str, str, str], partitions: int, rate_eps: float, seconds: float, size: int
) -> LatencySummary:
    """End-to-end latency through both hops at ``rate_eps`` for ``seconds``: send time -> visible at the sink.

    One warm-up record per partition goes first and the clock starts only once all of them arrived (both hops
    joined, positioned and committing). Records are ``size`` bytes (the main run's mean event), sent by an
    idempotent ``acks=all`` producer, as the agents send, and paced every :data:`SEND_TICK_S`.
    """
    source, middle, sink = topics
    records = max(1, round(rate_eps * seconds))
    hops = await _start_hops(conn, source, middle, sink, records + partitions)
    reader = kafka.consumer(conn, sink, auto_offset_reset="earliest")
    producer = kafka.producer(conn, acks="all", enable_idempotence=True, linger_ms=1, compression_type="lz4")
    recorder = LatencyRecorder()
    warm = asyncio.Event()
    reading: asyncio.Task[None] | None = None
    try:
        await reader.start()
        await producer.start()

        async def read() -> None:
            warmed = 0
            while recorder.count < records:
                batches = await reader.getmany(timeout_ms=100)
                now = time.time_ns()
                for batch in batches.values():
                    for record in batch:
                        sent = int.from_bytes((record.value or WARM_UP)[:_STAMP], "big")
                        if sent == 0:
                            warmed += 1
                            if warmed >= partitions:
                                warm.set()
                        else:
                            recorder.record((now - sent) / 1e6)

        reading = asyncio.create_task(read())
        for p in range(partitions):
            await producer.send(source, WARM_UP, partition=p)
        await asyncio.wait_for(warm.wait(), TIMEOUT_S)
        pad = b"\x01" * max(0, size - _STAMP)
        start, sent = time.monotonic(), 0
        while sent < records:
            due = min(records, int((time.monotonic() - start) * rate_eps) + 1)
            for i in range(sent, due):
                await producer.send(source, time.time_ns().to_bytes(_STAMP, "big") + pad, key=i.to_bytes(8, "big"))
            sent = due
            await asyncio.sleep(SEND_TICK_S)
        await producer.flush()
        await asyncio.wait_for(reading, TIMEOUT_S)
        await _hop_results(hops)
    finally:
        if reading is not None and not reading.done():
            reading.cancel()
        for proc in hops:
            if proc.returncode is None:
                proc.kill()
        await kafka.close_producer(producer)
        await kafka.close_consumer(reader)
    return recorder.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_connection_arguments(parser)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    import uvloop

    conn = connection_from(args)
    result = uvloop.run(one_hop(conn, args.source, args.sink, args.records, args.group))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
