"""consent_io.kafka: factories honour the connection and the product's defaults; the aiokafka internals we use exist."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from consent_io import kafka
from consent_io.connection import KafkaConnection

PLAIN = KafkaConnection("127.0.0.1:1")


class _Recorder:
    """Stands in for an aiokafka class: keeps the arguments it was built with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"):
        monkeypatch.setattr(kafka, name, _Recorder)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "consent-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)  # the factories refuse a key others may read
    return cert_file, key_file


@pytest.mark.usefixtures("recorded")
def test_a_consumer_reads_committed_records_and_never_auto_commits_by_default() -> None:
    consumer: Any = kafka.consumer(PLAIN, "a", "b", group_id="g")
    assert consumer.args == ("a", "b")
    assert consumer.kwargs == {
        "bootstrap_servers": "127.0.0.1:1",
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "group_id": "g",
    }


@pytest.mark.usefixtures("recorded")
def test_a_caller_may_override_the_consumer_defaults() -> None:
    consumer: Any = kafka.consumer(PLAIN, isolation_level="read_uncommitted")
    assert consumer.kwargs["isolation_level"] == "read_uncommitted"


@pytest.mark.usefixtures("recorded")
def test_a_transactional_producer_is_idempotent_with_acks_all_and_its_id() -> None:
    producer: Any = kafka.transactional_producer(PLAIN, "app.stage.3", linger_ms=5)
    assert producer.kwargs == {
        "bootstrap_servers": "127.0.0.1:1",
        "transactional_id": "app.stage.3",
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": kafka.MAX_REQUEST_BYTES,
    }


@pytest.mark.usefixtures("recorded")
def test_plaintext_clients_get_no_security_settings() -> None:
    for client in (kafka.producer(PLAIN), kafka.consumer(PLAIN), kafka.admin(PLAIN)):
        assert "security_protocol" not in client.kwargs  # type: ignore[attr-defined]
        assert "ssl_context" not in client.kwargs  # type: ignore[attr-defined]


@pytest.mark.usefixtures("recorded")
def test_an_ssl_connection_gives_every_client_a_context_with_the_ca_and_the_client_certificate(
    tmp_path: Path,
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    conn = KafkaConnection("broker:9093", "SSL", str(cert_file), str(cert_file), str(key_file))
    for client in (kafka.producer(conn), kafka.consumer(conn), kafka.admin(conn)):
        kwargs = client.kwargs  # type: ignore[attr-defined]
        assert kwargs["security_protocol"] == "SSL"
        context = kwargs["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "consent-test"),),)]


def test_real_aiokafka_clients_accept_the_ssl_settings(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    conn = KafkaConnection("broker:9093", "SSL", str(cert_file), str(cert_file), str(key_file))

    async def build() -> None:  # aiokafka clients want a running loop
        producer, consumer = kafka.producer(conn), kafka.consumer(conn)
        assert isinstance(producer, AIOKafkaProducer)
        assert isinstance(consumer, AIOKafkaConsumer)
        await kafka.admin(conn).close()
        await producer.stop()
        await consumer.stop()

    asyncio.run(build())


def test_the_aiokafka_internals_the_adapter_uses_still_exist() -> None:
    """partitions_for, refresh_metadata, known_partitions, prefetch_topics, close_producer reach into these; a library
    change fails."""

    async def inspect_clients() -> None:
        consumer = kafka.consumer(PLAIN)
        assert inspect.iscoroutinefunction(consumer._client.fetch_all_metadata)
        assert callable(consumer._client.force_metadata_update)  # returns a future
        assert callable(producer_client_force := kafka.producer(PLAIN).client.force_metadata_update)
        assert producer_client_force.__name__ == "force_metadata_update"  # spaced: consent_io.kafka._throttle_metadata
        producer = kafka.producer(PLAIN)
        assert producer.client.cluster.partitions_for_topic("never-seen") is None
        assert kafka.known_partitions(producer, "never-seen") is None
        assert isinstance(producer.client._topics, set) and callable(producer.client.set_topics)  # prefetch_topics
        assert callable(producer._message_accumulator.fail_all)  # close_producer: a close Kafka cannot block
        assert producer._message_accumulator._batch_ttl == 40.0  # request_timeout_ms: what delivery_timeout_ms sets
        lasting = kafka.transactional_producer(PLAIN, "t", delivery_timeout_ms=90_000)
        assert lasting._message_accumulator._batch_ttl == 90.0
        await lasting.stop()
        await consumer.stop()
        await producer.stop()

    asyncio.run(inspect_clients())


def test_a_missing_topic_error_says_how_to_create_it() -> None:
    error = kafka.TopicMissingError("topic x does not exist; run `consent-broker topics create`")
    assert (error.reason, error.retriable) == ("TOPIC_MISSING", False)


@pytest.mark.usefixtures("recorded")
def test_every_producer_is_capped_at_the_one_max_request_size() -> None:
    producers: list[Any] = [kafka.producer(PLAIN), kafka.transactional_producer(PLAIN, "app.stage.0")]
    assert [p.kwargs["max_request_size"] for p in producers] == [kafka.MAX_REQUEST_BYTES] * 2
    with pytest.raises(ValueError, match=r"over the broker's message\.max\.bytes"):
        kafka.producer(PLAIN, max_request_size=kafka.MAX_REQUEST_BYTES + 1)


class _TxnManager:
    def is_fatal_error(self) -> bool:
        return False


class _TxnProducer:
    """Records the transactional calls; its one send fails or succeeds as told."""

    def __init__(self, fail: bool) -> None:
        self.fail, self._txn_manager = fail, _TxnManager()
        self.calls: list[str] = []

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(KafkaError("no leader"))
        else:
            future.set_result("meta")
        return future

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")


@pytest.mark.parametrize("fail", [False, True])
async def test_a_transaction_commits_only_when_every_send_was_delivered(fail: bool) -> None:
    """aiokafka's own transaction() commits even after a send failed (issue 13): ours aborts and raises instead."""
    producer = _TxnProducer(fail)

    async def run() -> None:
        async with kafka.transaction(producer) as sent:  # type: ignore[arg-type]
            sent.append(await producer.send("t", b"v", partition=0))

    if fail:
        with pytest.raises(KafkaError):
            await run()
        assert producer.calls == ["begin", "abort"]
    else:
        await run()
        assert producer.calls == ["begin", "commit"]


def test_a_transaction_after_a_commit_retries_its_first_partition_after_5_ms_not_20() -> None:
    from aiokafka.producer import sender

    assert sender.BACKOFF_OVERRIDE == kafka.CONCURRENT_TXN_BACKOFF_S == 0.005  # the private constant still read
    assert "BACKOFF_OVERRIDE" in inspect.getsource(sender.AddPartitionsToTxnHandler.handle_response)


def test_aiokafka_still_has_the_transaction_state_our_transaction_reads() -> None:
    from aiokafka.producer.transaction_manager import TransactionManager

    assert callable(getattr(TransactionManager, "is_fatal_error", None))  # kafka.transaction reads it (private)


@given(st.binary(max_size=80))
def test_our_murmur2_is_kafkas_as_aiokafka_computes_it(data: bytes) -> None:
    from aiokafka.partitioner import DefaultPartitioner
    from aiokafka.partitioner import murmur2 as reference

    assert kafka.murmur2(data) == reference(data)
    for n in (1, 6, 7, 12):
        assert kafka.partition_for(data or b"k", set(range(n))) == DefaultPartitioner()(
            data or b"k", list(range(n)), list(range(n))
        )


def test_murmur2_on_kafkas_own_published_vectors() -> None:
    """Values from Apache Kafka's UtilsTest.testMurmur2 (Java ints; here unsigned 32-bit)."""
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, java in vectors.items():
        assert kafka.murmur2(data) == java & 0xFFFFFFFF


class _Sink:
    """Queues each send; ``fail`` names the topic whose delivery fails."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail, self.queued, self.futures = fail, [], []  # type: ignore[var-annotated]

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        raise AssertionError("send_all must not wait on each record")

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> asyncio.Future[None]:
        self.queued.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append((topic, future))
        return future


async def test_send_all_queues_every_record_before_awaiting_any_then_waits_for_each() -> None:
    sink = _Sink()
    task = asyncio.create_task(kafka.send_all(sink, [("a", b"k1", b"v1"), ("b", b"k2", b"v2"), ("a", None, None)]))
    await asyncio.sleep(0)
    assert sink.queued == [("a", b"k1", b"v1"), ("b", b"k2", b"v2"), ("a", None, None)]  # all in flight at once
    assert not task.done()
    for _, future in sink.futures[:2]:
        future.set_result(None)
    await asyncio.sleep(0)
    assert not task.done()  # the last acknowledgement is still awaited
    sink.futures[2][1].set_result(None)
    assert await task == 3


async def test_send_all_raises_the_first_failed_delivery_and_takes_the_others_quietly() -> None:
    sink = _Sink()
    task = asyncio.create_task(kafka.send_all(sink, [("a", b"k", b"v"), ("b", b"k", b"v")]))
    await asyncio.sleep(0)
    sink.futures[0][1].set_exception(KafkaError("not enough replicas"))
    with pytest.raises(KafkaError, match="not enough replicas"):
        await task
    later = sink.futures[1][1]
    later.set_exception(KafkaError("later"))
    await asyncio.sleep(0)  # abandon's callback retrieves it: asyncio will not log "exception was never retrieved"
    assert later._log_traceback is False  # type: ignore[attr-defined]
