"""Wiring: settings -> outbox, intake, publisher, transport, replica, follower, HTTP server.

The only module that chooses concrete implementations. :class:`Agent` owns every task it
starts; :meth:`Agent.stop` closes the HTTP server first (in-flight submissions finish), then
cancels the publisher and follower, and closes the outbox, which commits its queue first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_io.secrets import check_secret_mode
from edge_agent.api_auth import load_token
from edge_agent.config import Settings, load_decision_policy
from edge_agent.errors import ConfigError
from edge_agent.http_api import ApiContext, make_app
from edge_agent.intake import Intake
from edge_agent.metrics import EdgeCollector, SubmissionCounts, make_registry
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher, PublisherSettings, Transport
from edge_agent.replica import Replica, load_patient_keys
from edge_agent.replica_follow import KafkaReplicaFollower, MqttReplicaFollower, SignedFeed
from edge_agent.transport_kafka import KafkaTransport
from edge_agent.transport_mqtt import MqttTransport
from edge_agent.wire import AvroEventCodec, WireBatchSigner, load_agent_signer, load_pseudonymiser, make_clock

__all__ = ["Agent", "make_transport", "now_ms", "open_intake", "open_outbox"]

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def open_outbox(settings: Settings) -> Outbox:
    return await Outbox.open(
        settings.outbox_path,
        agent_id=settings.agent_id,
        site=settings.site,
        codec=AvroEventCodec(),
        cap_bytes=settings.disk_cap_bytes,
        synchronous=settings.synchronous,
    )


async def open_intake(settings: Settings) -> tuple[Outbox, Intake]:
    """The outbox and an intake over it (also used by ``edge-agent submit`` without a server)."""
    outbox = await open_outbox(settings)
    pseudonymise = load_pseudonymiser(settings.pseudonym_secret_file)
    clock = make_clock(now_ms, outbox.last_hlc)
    return outbox, Intake(outbox, pseudonymise, clock, now_ms, site=settings.site)


def make_transport(settings: Settings) -> KafkaTransport | MqttTransport:
    if settings.transport == "mqtt":
        core_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(settings.core_public_key_hex))  # validated
        return MqttTransport(
            settings.mqtt_connection(), settings.agent_id, core_key, ack_timeout_s=settings.ack_timeout_s
        )
    return KafkaTransport(
        settings.kafka_connection(), settings.ingress_topic, settings.agent_id, ack_timeout_s=settings.ack_timeout_s
    )


@dataclass
class Agent:
    settings: Settings
    outbox: Outbox
    replica: Replica
    publisher: Publisher
    transport: KafkaTransport | MqttTransport
    runner: web.AppRunner
    tasks: list[asyncio.Task[None]]
    stopping: asyncio.Event

    @classmethod
    async def start(cls, settings: Settings) -> Agent:
        outbox, intake = await open_intake(settings)
        signer = WireBatchSigner(load_agent_signer(settings.signing_key_file, settings.agent_id))
        transport = make_transport(settings)
        publisher = Publisher(outbox, signer, _as_transport(transport), _publisher_settings(settings))
        patients = load_patient_keys(settings.patients_file) if settings.patients_file else None
        replica = Replica(settings.replica_path, patients)
        await replica.open()
        counts = SubmissionCounts()
        refused_acks = transport.refused_acks if isinstance(transport, MqttTransport) else None
        certificates = {
            "ca": settings.tls_ca_file,
            "agent": settings.tls_cert_file,
            "https": settings.http_tls_cert_file,
        }
        collector = EdgeCollector(
            outbox, counts, publisher, replica, refused_acks=refused_acks, certificates=certificates
        )
        registry = make_registry(collector)
        ctx = ApiContext(
            settings.agent_id,
            settings.site,
            intake,
            outbox,
            load_pseudonymiser(settings.pseudonym_secret_file),
            counts,
            registry,
            now_ms,
            replica,
            lambda: publisher.connected,
            load_decision_policy(settings.decision_policy_file),
        )
        token = None if settings.insecure_api else load_token(_required_path(settings.api_token_file))
        if token is None:
            log.warning("edge agent API runs with insecure_api: no bearer token is checked (debugging only)")
        runner = web.AppRunner(make_app(ctx, token), access_log=None)  # access logs could carry query data
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port, ssl_context=_server_tls(settings)).start()
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(publisher.run(stopping), name="publisher")]
        if settings.follow_replica:
            tasks.append(asyncio.create_task(_follower(settings, replica).run(), name="replica-follower"))
        log.info(
            "edge agent started agent_id=%s site=%s http=%s:%d",
            settings.agent_id,
            settings.site,
            settings.http_host,
            settings.http_port,
        )
        return cls(settings, outbox, replica, publisher, transport, runner, tasks, stopping)

    async def stop(self) -> None:
        self.stopping.set()
        await self.runner.cleanup()  # stop taking submissions; in-flight requests finish first
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.transport.close()
        await self.outbox.close()
        await self.replica.close()
        log.info("edge agent stopped")


def _as_transport(transport: KafkaTransport | MqttTransport) -> Transport:
    return transport


def _follower(settings: Settings, replica: Replica) -> KafkaReplicaFollower | MqttReplicaFollower:
    """The follower of this site's own feed; every record it applies is verified with the core's key."""
    feed = SignedFeed(replica, settings.core_public_key(), now_ms=now_ms)
    if settings.transport == "mqtt":
        return MqttReplicaFollower(settings.mqtt_connection(), settings.site, settings.agent_id, feed)
    return KafkaReplicaFollower(settings.kafka_connection(), settings.kafka_replica_topic, feed, replica)


def _publisher_settings(s: Settings) -> PublisherSettings:
    return PublisherSettings(
        batch_max_events=s.batch_max_events,
        linger_ms=s.linger_ms,
        backoff_base_s=s.backoff_base_s,
        backoff_cap_s=s.backoff_cap_s,
    )


def _required_path(path: Path | None) -> Path:
    if path is None:  # settings validation requires it unless insecure_api
        raise ConfigError("api_token_file is required unless insecure_api = true")
    return path


def _server_tls(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS for the local API when it listens beyond loopback (settings require the files then)."""
    if settings.http_tls_cert_file is None or settings.http_tls_key_file is None:
        return None
    check_secret_mode(settings.http_tls_key_file, "http_tls_key_file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.http_tls_cert_file, settings.http_tls_key_file)
    return context
