"""The audit log on Kafka: the appender restores its chain, export verifies, tampering is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.audit import AuditRecord, RecordKind, parse_log
from broker.audit.appender import AuditAppender
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from consent_io.kafka import read_to_end
from consent_wire.codes import DataClass, PurposeOfUse
from tests.integration.api.conftest import cli

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000


def record(i: int) -> AuditRecord:
    return AuditRecord(RecordKind.DECISION, T0 + i, f"patient-{i % 3}", f"staff-{i}", "RX1", "GP",
                       PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT", state_version=i)  # fmt: skip


async def write_log(conn: KafkaConnection, topic: str, key: Ed25519PrivateKey, first: int, count: int) -> list[int]:
    appender = AuditAppender(conn, topic, key, checkpoint_every=4)
    await appender.start()
    try:
        return [(await appender.append(record(first + i))).index for i in range(count)]
    finally:
        await appender.stop()


async def test_restarted_appender_continues_the_chain_and_the_topic_verifies(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    key = Ed25519PrivateKey.generate()
    assert await write_log(kafka_connection, topic_names.audit, key, 0, 6) == list(range(6))
    assert await write_log(kafka_connection, topic_names.audit, key, 6, 5) == list(range(6, 11))
    stored = parse_log(r.value for r in await read_to_end(kafka_connection, topic_names.audit))
    assert [e.index for e in stored.entries] == list(range(11))
    # every 4 records, plus a final one on each stop: 3 (first run: 3, stop 5), then 7 and the final 10
    assert [c.checkpoint.index for c in stored.checkpoints] == [3, 5, 7, 10]
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    result = await cli("audit", "verify", "--bootstrap", kafka_bootstrap, "--prefix", topic_names.prefix,
                       "--public-key", public)  # fmt: skip
    assert (result.code, result.out.strip()) == (0, "OK: 11 entries, 4 checkpoints"), result.err


async def test_exported_log_verifies_and_each_tampering_is_named(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames, tmp_path: Path
) -> None:
    await write_log(kafka_connection, topic_names.audit, Ed25519PrivateKey.generate(), 0, 10)
    export = tmp_path / "audit.jsonl"
    result = await cli("audit", "export", "--bootstrap", kafka_bootstrap, "--prefix", topic_names.prefix,
                       "--out", str(export))  # fmt: skip
    assert result.code == 0, result.err
    lines = export.read_bytes().splitlines()
    assert (await cli("audit", "verify", "--file", str(export))).code == 0
    entry_at = [k for k, line in enumerate(lines) if b'"type":"entry"' in line]

    edited = list(lines)
    edited[entry_at[5]] = edited[entry_at[5]].replace(b'\\"outcome\\":\\"PERMIT\\"', b'\\"outcome\\":\\"DENY\\"')
    deleted = [line for k, line in enumerate(lines) if k != entry_at[8]]
    swapped = list(lines)
    swapped[entry_at[1]], swapped[entry_at[2]] = swapped[entry_at[2]], swapped[entry_at[1]]
    expected = {"edited": "EDITED at index 5", "deleted": "DELETED after index 7", "swapped": "REORDERED 1<->2"}
    for name, tampered in (("edited", edited), ("deleted", deleted), ("swapped", swapped)):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join(tampered) + b"\n")
        result = await cli("audit", "verify", "--file", str(path))
        assert result.code == 1, name
        assert result.out.splitlines()[0].startswith(expected[name]), result.out
        assert "FAILED" in result.err
