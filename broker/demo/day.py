"""A realistic day: three sites, consents and objections, a shielded child, an offline care home,
decisions with reasons, one patient's access log and the governance reports.

Runs on the project's own local Kafka and Mosquitto (stack "demo", started and stopped here unless
it was already running), on fresh topics, and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from broker.demo.narration import say
from broker.demo.people import CARE_HOME, GATEWAY, GP
from broker.demo.script import play
from broker.demo.stack import AgentHandle, StateFollower, free_port
from broker.infra import Infra, InfraConfig
from broker.keys_admin import publish_key_events
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.topics import TopicNames, create_topics
from consent_io.connection import KafkaConnection
from consent_io.secrets import write_secret
from consent_wire.dsse import AgentSigner, public_key_bytes
from consent_wire.keys import OperatorRoot

__all__ = ["run_demo"]

DEMO_KAFKA_PORT = 29092  # away from a developer's default 9092 and the tests' 19092
DEMO_MQTT_PORT = 21883


async def run_demo(out_dir: Path) -> int:
    infra = Infra(InfraConfig(name="demo", kafka_port=DEMO_KAFKA_PORT, mqtt_port=DEMO_MQTT_PORT))
    started = not infra.status().healthy
    t0 = time.monotonic()
    if started:
        say("Starting Apache Kafka (KRaft) and Mosquitto on loopback ...")
        await asyncio.to_thread(infra.up)
    say(f"  {infra.status().render().replace(chr(10), chr(10) + '  ')}")
    try:
        with tempfile.TemporaryDirectory(prefix="consent-demo-") as tmp:
            await _day(infra.config.bootstrap, Path(tmp), out_dir)
    finally:
        if started:
            stopped = await asyncio.to_thread(infra.down)
            say(f"Stopped {', '.join(stopped)}; no process left behind.")
    say(f"Demo finished in {time.monotonic() - t0:.0f}s. Reports are in {out_dir}/")
    return 0


async def _day(bootstrap: str, work: Path, out_dir: Path) -> None:
    topics = TopicNames(f"demo{int(time.time())}")
    conn = KafkaConnection(bootstrap)
    await create_topics(conn, topics)
    secret = work / "pseudonym.secret"
    secret.write_text(os.urandom(32).hex())
    secret.chmod(0o600)
    root = OperatorRoot.generate()
    core_key = AgentSigner.generate("core")  # signs every replica record the mirror sends to sites
    core_key_file = work / "core-signing.key"
    raw = core_key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    write_secret(core_key_file, raw.hex().encode() + b"\n")
    http_port = free_port()
    core = Core(
        CoreSettings(
            bootstrap=bootstrap,
            topic_prefix=topics.prefix,
            app_id=f"{topics.prefix}-core",
            stages=("verifier", "reconciler", "bridge", "api", "mirror"),
            root_public_key_hex=public_key_bytes(root.public_key).hex(),
            pseudonym_secret_file=str(secret),
            http_port=http_port,
            mqtt_port=DEMO_MQTT_PORT,
            gap_timeout_ms=30_000,
            core_signing_key_file=str(core_key_file),
        )
    )
    common = {
        "pseudonym_secret_file": secret,
        "kafka_bootstrap": bootstrap,
        "ingress_topic": topics.ingress,
        "core_public_key_hex": core_key.public_key_bytes.hex(),
        "mqtt_port": DEMO_MQTT_PORT,
        "linger_ms": 20,
        "backoff_base_s": 0.2,
        "backoff_cap_s": 2.0,
    }
    gp = AgentHandle.create(work, "riverside-gp", GP, **common)
    home = AgentHandle.create(work, "oakfield-home", CARE_HOME, **common)
    gateway = AgentHandle.create(work, "rm-gateway-7", GATEWAY, transport="mqtt", **common)
    agents = (gp, home, gateway)
    say("\nOperator registers each site's signing key (root-signed key events on the keys topic).")
    await publish_key_events(conn, topics.keys, [root.register(a.settings.agent_id, a.public_key, 0) for a in agents])
    follower = StateFollower(conn, topics.state)
    await core.start()
    await core.wait_ready()
    await follower.start()
    say(f"Core running: verifier, reconciler, MQTT bridge, decision API on 127.0.0.1:{http_port}")
    try:
        await gp.start()
        await gateway.start()
        await home.start(kafka_bootstrap="127.0.0.1:1")  # the care home's line is down this morning
        async with aiohttp.ClientSession() as session:
            await play(session, gp, home, gateway, follower, f"http://127.0.0.1:{http_port}", out_dir, conn, root)
    finally:
        for a in agents:
            await a.stop()
        await follower.stop()
        await core.stop()
