"""Runs the chosen core stages in one process on one event loop, with clean shutdown on SIGTERM/SIGINT.

Stages (the names of :data:`broker.settings.STAGES`): ``verifier``, ``reconciler`` and ``reports`` are
transactional Kafka stages built here; the others are services listed in :data:`SERVICES`, an
explicit table (no lookup by module name), each built from the core and started with its stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.health import CORE_HEALTHY, HealthServer
from broker.keys_follower import KeysFollower
from broker.ops_metrics import CERTIFICATES
from broker.pipeline import ReconcilerLogic, ReportsLogic, VerifierLogic
from broker.sessions import backoff_delay
from broker.settings import CoreSettings, SettingsError, read_hex_file
from broker.stage import RETRY_BASE_S, RETRY_CAP_S, StageConfig, TransactionalStage
from broker.topics import Topic, TopicNames
from broker.verifier import VerifierCore
from consent_io import kafka
from consent_io.recovery import RateLimit
from consent_wire.keys import KeyRegistry
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = ["PIPELINE_STAGES", "SERVICES", "Core", "Service"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Service(Protocol):
    """A stage beside the pipeline: started once, its tasks end when ``stop`` is set."""

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]: ...


PIPELINE_STAGES = ("verifier", "reconciler", "reports")  # TransactionalStages, built by Core itself


# Each service's module is imported when a core runs that stage: a verifier process does not load the API's
# handlers and FHIR models, the bridge or the mirror (a restarted stage is back sooner).
def _bridge(core: Core) -> Service:
    from broker.bridge.service import MqttBridge

    return MqttBridge.for_core(core)


def _api(core: Core) -> Service:
    from broker.api.service import ApiService

    return ApiService.for_core(core)


def _mirror(core: Core) -> Service:
    from broker.mirror.service import ReplicaMirror

    return ReplicaMirror.for_core(core)


# stage name -> how the core builds it; with PIPELINE_STAGES this covers broker.settings.STAGES
SERVICES: Mapping[str, Callable[[Core], Service]] = {"bridge": _bridge, "api": _api, "mirror": _mirror}


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
        self.kafka_reachable = False  # False while start-up waits for Kafka
        self.health: HealthServer | None = None

    def _stage_config(self, name: str) -> StageConfig:
        s = self.settings
        # An ingress record is a signed batch of up to 500 events (the agents' batch_max_events), an events
        # record is one event: poll ~10-30k events per transaction either way, so the reconciler starts on
        # the verifier's output while the verifier goes on, instead of waiting for one huge transaction.
        max_records = 64 if name == "verifier" else 5000
        state_dir = Path(s.state_dir) / s.app_id if s.state_dir else None
        return StageConfig(
            s.kafka_connection(name),
            f"{s.app_id}.{name}",
            s.app_id,
            max_records=max_records,
            state_dir=state_dir,
            group_instance_id=f"{s.instance_id}.{name}" if s.instance_id else None,
            commit_interval_ms=s.commit_interval_ms,
        )

    def stage_health(self) -> dict[str, bool]:
        """Stage -> healthy (Kafka reachable, partitions held); ``kafka`` is False while start-up waits for it."""
        return {"kafka": self.kafka_reachable, **{name: stage.healthy for name, stage in self.stages.items()}}

    async def _until_reachable(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T | None:
        """``attempt_once()`` until it succeeds or the core stops (None); Kafka unreachable is waited out."""
        attempt = 0
        lines = RateLimit(interval_s=30.0)
        while not self.stop_event.is_set():
            try:
                result = await attempt_once()
            except (KafkaError, OSError) as exc:
                self.kafka_reachable = False
                delay = backoff_delay(attempt, RETRY_BASE_S, RETRY_CAP_S)
                held = lines.allow(what, time.monotonic())
                if held is not None:
                    log.warning(
                        "%s: Kafka unreachable on %s error=%r; retrying in %.1f s (%d similar lines held back)",
                        what, self.settings.bootstrap, exc, delay, held,
                    )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), delay)
                attempt += 1
            else:
                self.kafka_reachable = True
                return result
        return None

    async def start(self) -> None:
        """Start every stage; while Kafka is unreachable, wait (unhealthy) with backoff instead of failing."""
        s = self.settings
        if s.metrics_port:
            self.health = HealthServer(s.metrics_port, self.stage_health, host=s.metrics_host)
            self.health.start()
            CORE_HEALTHY.set_function(lambda: 1.0 if all(self.stage_health().values()) else 0.0)
        if not await self._until_reachable("topics check", self._check_topics):
            return  # stopped while waiting for Kafka
        if "verifier" in s.stages:  # root_public_key_hex was validated when the settings loaded
            root = Ed25519PublicKey.from_public_bytes(bytes.fromhex(s.root_public_key_hex))
            self._keys = await self._until_reachable("key registry", lambda: self._follow_keys(root))
            if self._keys is None:
                return  # stopped while waiting for Kafka
            pseudonyms = CorePseudonyms(read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file"))
            core = VerifierCore(self._keys.registry, gap_timeout_ms=s.gap_timeout_ms, pseudonyms=pseudonyms)
            self.stages["verifier"] = TransactionalStage(
                self._stage_config("verifier"), VerifierLogic(self.topics, core, self._keys)
            )
        if "reconciler" in s.stages:
            self.stages["reconciler"] = TransactionalStage(
                self._stage_config("reconciler"), ReconcilerLogic(self.topics)
            )
        if "reports" in s.stages:
            self.stages["reports"] = TransactionalStage(self._stage_config("reports"), ReportsLogic(self.topics))
        for name in s.stages:
            if name in SERVICES:
                service = SERVICES[name](self)
                self.services[name] = service
                self._tasks.extend(await service.start(self.stop_event))
        CERTIFICATES.watch(self._certificates())
        for name, stage in self.stages.items():
            self._tasks.append(asyncio.create_task(stage.run(self.stop_event), name=f"stage-{name}"))
        for task in self._tasks:
            task.add_done_callback(self._watch)

    async def _follow_keys(self, root: Ed25519PublicKey) -> KeysFollower:
        """The key registry, read to its end (a fresh registry per attempt: a half-read one is dropped)."""
        registry = KeyRegistry(root)
        reader = kafka.KafkaTopicReader(self.settings.kafka_connection("verifier"), self.topics.keys, partitions=[0])
        follower = KeysFollower(reader, registry)
        try:
            await follower.start()
        except BaseException:
            with contextlib.suppress(KafkaError, OSError):
                await follower.stop()
            raise
        return follower

    def _certificates(self) -> dict[str, str]:
        """role -> certificate file this process presents or trusts (for the expiry alert)."""
        s = self.settings
        files = {"api-https": "" if s.insecure_http or "api" not in s.stages else s.http_tls_cert_file}
        if s.kafka_security != "PLAINTEXT" or s.mqtt_tls:
            files["ca"] = s.tls_ca_file
            files.update({f"core.{name}": s.kafka_connection(name).cert_file or "" for name in s.stages})
        return files

    async def _check_topics(self) -> bool:
        """Fail fast, in one line, when topics were not provisioned (auto-create is off by design)."""
        admin = kafka.admin(self.settings.kafka_connection(self.settings.stages[0]))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
        finally:
            with contextlib.suppress(KafkaError, OSError):
                await admin.close()
        missing = sorted(self.topics.name(t) for t in Topic if self.topics.name(t) not in existing)
        if missing:
            raise SettingsError(
                f"topics missing on {self.settings.bootstrap}: {', '.join(missing)}; "
                f"create them with: consent-broker topics create --prefix {self.topics.prefix}"
            )
        return True

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
        if self.health is not None:
            self.health.stop()
        log.info("core stopped")
