"""Ceilings on the same broker in the same run: Kafka's own perf tools and a raw aiokafka pass-through."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import NewTopic

from broker.infra import kafka
from consent_io import kafka as kafka_io
from consent_io.connection import KafkaConnection
from consent_io.secrets import write_secret
from loadtests.passthrough import connection_args

__all__ = [
    "Ceilings",
    "client_config",
    "consumer_perf",
    "create_scratch_topic",
    "parse_consumer_csv",
    "parse_producer_summary",
    "passthrough_perf",
    "producer_perf",
]

TOOL_HEAP = "-Xmx512m"  # the perf tools need little heap; the broker has 1 GiB (broker/infra/kafka.py)
TOOL_TIMEOUT_S = 180.0
# ProducerPerformance's summary: "N records sent, X records/sec (Y MB/sec), Z ms avg latency, W ms max latency, ..."
_PRODUCER_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency")
# the same client settings our producers use (broker/stage.py): acks=all, idempotent, 5 ms linger, lz4, 1 MiB batches
PRODUCER_PROPS = ("acks=all", "enable.idempotence=true", "linger.ms=5", "compression.type=lz4", "batch.size=1048576")


@dataclass(frozen=True, slots=True)
class Ceilings:
    record_bytes: int
    producer_eps: float | None
    producer_mb_s: float | None
    producer_avg_latency_ms: float | None
    consumer_eps: float | None
    consumer_fetch_eps: float | None
    passthrough_eps: float | None
    passthrough_cpu_us_per_record: float | None
    errors: tuple[str, ...] = ()
    # two hops (source -> middle -> sink) through the core's own transactional stage, copying (loadtests.twohop)
    twohop_eps: float | None = None
    twohop_cpu_us_per_record: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _java(cache: Path, main: str, *args: str) -> list[str]:
    libs = kafka.ensure_jars(cache)
    return [
        kafka.java_path(),
        TOOL_HEAP,
        "-Djava.awt.headless=true",
        "-Dlog4j2.level=warn",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


async def _run(argv: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TOOL_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[-1] if argv else '?'} exited {proc.returncode}: {text.strip()[-300:]}")
    return text


def client_config(conn: KafkaConnection, directory: Path) -> Path:
    """A Java client properties file for ``conn``: mutual TLS with PEM stores (KIP-651), or plaintext.

    The key and certificate go into one 0600 PEM keystore file, as Kafka's PEM keystore reads them.
    """
    path = directory / "kafka-client.properties"
    if conn.security_protocol != "SSL":
        path.write_text("security.protocol=PLAINTEXT\n")
        return path
    keystore = directory / "kafka-client.keystore.pem"
    write_secret(keystore, Path(conn.key_file).read_bytes() + Path(conn.cert_file).read_bytes())
    path.write_text(
        "security.protocol=SSL\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={conn.ca_file}\n"
        "ssl.keystore.type=PEM\n"
        f"ssl.keystore.location={keystore}\n"
    )
    return path


async def create_scratch_topic(conn: KafkaConnection, name: str, partitions: int) -> None:
    admin = kafka_io.admin(conn)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs={"compression.type": "producer"})])
    finally:
        await admin.close()


async def producer_perf(
    cache: Path, conn: KafkaConnection, config: Path, topic: str, records: int, size: int
) -> tuple[float, float, float]:
    """(records/s, MB/s, average latency ms) from org.apache.kafka.tools.ProducerPerformance."""
    argv = _java(
        cache,
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer.config",
        str(config),
        "--producer-props",
        f"bootstrap.servers={conn.bootstrap}",
        *PRODUCER_PROPS,
    )
    return parse_producer_summary(await _run(argv))


def parse_producer_summary(text: str) -> tuple[float, float, float]:
    matches = _PRODUCER_LINE.findall(text)
    if not matches:
        raise RuntimeError(f"no summary line from ProducerPerformance: {text.strip()[-300:]}")
    _, eps, mbs, latency = matches[-1]
    return float(eps), float(mbs), float(latency)


async def consumer_perf(
    cache: Path, conn: KafkaConnection, config: Path, topic: str, records: int
) -> tuple[float, float]:
    """(records/s including group join, records/s while fetching) from ConsumerPerformance."""
    argv = _java(
        cache,
        "org.apache.kafka.tools.ConsumerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--bootstrap-server",
        conn.bootstrap,
        "--consumer.config",
        str(config),
        "--timeout",
        "60000",
        "--group",
        f"bench-perf-{time.time_ns()}",
    )
    return parse_consumer_csv(await _run(argv))


def parse_consumer_csv(text: str) -> tuple[float, float]:
    lines = [ln for ln in text.splitlines() if ln.count(",") >= 9]
    if len(lines) < 2:
        raise RuntimeError(f"no CSV from ConsumerPerformance: {text.strip()[-300:]}")
    header = [h.strip() for h in lines[-2].split(",")]
    values = [v.strip() for v in lines[-1].split(",")]
    row = dict(zip(header, values, strict=False))
    return float(row["nMsg.sec"]), float(row["fetch.nMsg.sec"])


async def passthrough_perf(conn: KafkaConnection, source: str, sink: str, records: int) -> tuple[float, float]:
    """(records/s, CPU us per record) of loadtests.passthrough in its own process."""
    argv = [
        sys.executable,
        "-m",
        "loadtests.passthrough",
        "--bootstrap",
        conn.bootstrap,
        *connection_args(conn),
        "--source",
        source,
        "--sink",
        sink,
        "--records",
        str(records),
        "--group",
        f"bench-pass-{time.time_ns()}",
    ]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), TOOL_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"pass-through exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return float(result["records_per_s"]), float(result["cpu_s"]) * 1e6 / max(1, int(result["records"]))
