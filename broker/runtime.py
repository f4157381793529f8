"""Runs the chosen core stages in one process on one event loop, with clean shutdown on SIGTERM/SIGINT.

Stages (the names of :data:`broker.settings.STAGES`): ``verifier`` and ``reconciler`` are
transactional Kafka stages built here; the others are services listed in :data:`SERVICES`, an
explicit table (no lookup by module name), each built from the core and started with its stop event.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import start_http_server

from broker.api.service import ApiService
from broker.bridge.service import MqttBridge
from broker.keys_follower import KeysFollower
from broker.mirror.service import ReplicaMirror
from broker.ops_metrics import CERTIFICATES
from broker.pipeline import ReconcilerLogic, VerifierLogic
from broker.settings import CoreSettings, SettingsError
from broker.stage import StageConfig, TransactionalStage
from broker.topics import Topic, TopicNames
from broker.verifier import VerifierCore
from consent_io import kafka
from consent_wire.keys import KeyRegistry

__all__ = ["PIPELINE_STAGES", "SERVICES", "Core", "Service"]

log = logging.getLogger(__name__)


class Service(Protocol):
    """A stage beside the pipeline: started once, its tasks end when ``stop`` is set."""

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]: ...


PIPELINE_STAGES = ("verifier", "reconciler")  # TransactionalStages, built by Core itself
# stage name -> how the core builds it; with PIPELINE_STAGES this covers broker.settings.STAGES
SERVICES: Mapping[str, Callable[[Core], Service]] = {
    "bridge": MqttBridge.for_core,
    "api": ApiService.for_core,
    "mirror": ReplicaMirror.for_core,
}


class Core:
    """Owns every task it starts; ``stop`` lets each stage finish its batch, commit and close."""

    def __init__(self, settings: CoreSettings) -> None:
        self.settings = settings
        self.topics = TopicNames(settings.topic_prefix)
        self.stop_event = asyncio.Event()
        self.stages: dict[str, TransactionalStage] = {}
        self.services: dict[str, Service] = {}  # the services started, by stage name (e.g. the API's port)
        self._keys: KeysFollower | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None  # the first task that died, if any

    def _stage_config(self, name: str) -> StageConfig:
        s = self.settings
        # An ingress record is a signed batch of up to 500 events (the agents' batch_max_events), an events
        # record is one event: poll ~10-30k events per transaction either way, so the reconciler starts on
        # the verifier's output while the verifier goes on, instead of waiting for one huge transaction.
        max_records = 64 if name == "verifier" else 5000
        return StageConfig(s.kafka_connection(name), f"{s.app_id}.{name}", s.app_id, max_records=max_records)

    async def start(self) -> None:
        s = self.settings
        await self._check_topics()
        if "verifier" in s.stages:  # root_public_key_hex was validated when the settings loaded
            root = Ed25519PublicKey.from_public_bytes(bytes.fromhex(s.root_public_key_hex))
            registry = KeyRegistry(root)
            keys_reader = kafka.KafkaTopicReader(s.kafka_connection("verifier"), self.topics.keys, partitions=[0])
            self._keys = KeysFollower(keys_reader, registry)
            await self._keys.start()
            core = VerifierCore(registry, gap_timeout_ms=s.gap_timeout_ms)
            self.stages["verifier"] = TransactionalStage(
                self._stage_config("verifier"), VerifierLogic(self.topics, core, self._keys)
            )
        if "reconciler" in s.stages:
            self.stages["reconciler"] = TransactionalStage(
                self._stage_config("reconciler"), ReconcilerLogic(self.topics)
            )
        for name in s.stages:
            if name in SERVICES:
                service = SERVICES[name](self)
                self.services[name] = service
                self._tasks.extend(await service.start(self.stop_event))
        CERTIFICATES.watch(self._certificates())
        if s.metrics_port:
            start_http_server(s.metrics_port, addr=s.metrics_host)
        for name, stage in self.stages.items():
            self._tasks.append(asyncio.create_task(stage.run(self.stop_event), name=f"stage-{name}"))
        for task in self._tasks:
            task.add_done_callback(self._watch)

    def _certificates(self) -> dict[str, str]:
        """role -> certificate file this process presents or trusts (for the expiry alert)."""
        s = self.settings
        files = {"api-https": "" if s.insecure_http or "api" not in s.stages else s.http_tls_cert_file}
        if s.kafka_security != "PLAINTEXT" or s.mqtt_tls:
            files["ca"] = s.tls_ca_file
            files.update({f"core.{name}": s.kafka_connection(name).cert_file or "" for name in s.stages})
        return files

    async def _check_topics(self) -> None:
        """Fail fast, in one line, when topics were not provisioned (auto-create is off by design)."""
        admin = kafka.admin(self.settings.kafka_connection(self.settings.stages[0]))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
        finally:
            await admin.close()
        missing = sorted(self.topics.name(t) for t in Topic if self.topics.name(t) not in existing)
        if missing:
            raise SettingsError(
                f"topics missing on {self.settings.bootstrap}: {', '.join(missing)}; "
                f"create them with: consent-broker topics create --prefix {self.topics.prefix}"
            )

    def _watch(self, task: asyncio.Task[None]) -> None:
        """A task that dies takes the process down (so a supervisor restarts it), never silently."""
        if task.cancelled() or task.exception() is None or self.stop_event.is_set():
            return
        self.failure = task.exception()
        log.error("task=%s failed error=%r; stopping the core", task.get_name(), self.failure)
        self.stop_event.set()

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in self.stages.values())), timeout_s)

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        await self.start()
        log.info("core started stages=%s", ",".join(self.stages))
        await self.stop_event.wait()
        await self.stop()
        if self.failure is not None:
            raise SystemExit(f"core stopped after a failure: {self.failure!r}")

    async def stop(self) -> None:
        self.stop_event.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=30)
            except asyncio.CancelledError:
                continue
            except TimeoutError:
                log.error("task=%s did not stop within 30 s; cancelled", task.get_name())  # noqa: TRY400 - no traceback to show
            except Exception as exc:  # noqa: BLE001 - already reported by _watch; stop the others regardless
                log.error("task=%s ended with error=%r", task.get_name(), exc)  # noqa: TRY400 - _watch logged the traceback
        if self._keys is not None:
            await self._keys.stop()
        log.info("core stopped")
