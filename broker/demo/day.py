"""A realistic day: three sites, consents and objections, a shielded child, an offline care home,
decisions with reasons, one patient's access log and the governance reports.

Runs on the project's own local Kafka and Mosquitto (stack "demo", started and stopped here unless
it was already running), secure as in production: mutual TLS and deny-by-default ACLs on both, each core
stage and each site its own principal, the decision API over HTTPS with OAuth client credentials. Fresh
topics every run; no process is left behind.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from broker.demo.api import CoreApi
from broker.demo.narration import say
from broker.demo.people import API_CLIENTS, CARE_HOME, GATEWAY, GP
from broker.demo.script import play
from broker.demo.stack import AgentHandle, StateFollower, free_port
from broker.demo.witness import DemoWitness
from broker.infra import Infra, InfraConfig
from broker.infra.local import LocalDeployment
from broker.keys_admin import publish_key_events
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.topics import TopicNames, create_topics
from consent_io.secrets import write_secret
from consent_wire.authority import grantable
from consent_wire.dsse import AgentSigner, public_key_bytes
from consent_wire.keys import OperatorRoot
from consent_wire.site_pseudonyms import SitePseudonymiser

__all__ = ["DEMO_KAFKA_PORT", "DEMO_MQTT_PORT", "run_demo"]

DEMO_KAFKA_PORT = 29092  # away from a developer's default 9092 and the tests' 19092
DEMO_MQTT_PORT = 21883
# A fresh stack creates Kafka's internal offsets and transaction topics (50 partitions each) when the core's
# stages first join their groups: over a minute on a busy 2-core machine; later runs take seconds.
CORE_READY_S = 240.0


async def run_demo(out_dir: Path, kafka_port: int = DEMO_KAFKA_PORT, mqtt_port: int = DEMO_MQTT_PORT) -> int:
    infra = Infra(InfraConfig(name="demo", kafka_port=kafka_port, mqtt_port=mqtt_port))
    started = not infra.status().healthy
    t0 = time.monotonic()
    if started:
        say("Starting Apache Kafka (KRaft) and Mosquitto on loopback, mutual TLS and deny-by-default ACLs ...")
        await asyncio.to_thread(infra.up)
    say(f"  {infra.status().render().replace(chr(10), chr(10) + '  ')}")
    try:
        with tempfile.TemporaryDirectory(prefix="consent-demo-") as tmp:
            await _day(LocalDeployment(infra), Path(tmp), out_dir)
    finally:
        if started:
            stopped = await asyncio.to_thread(infra.down)
            say(f"Stopped {', '.join(stopped)}; no process left behind.")
    say(f"Demo finished in {time.monotonic() - t0:.0f}s. Reports are in {out_dir}/")
    return 0


async def _day(deployment: LocalDeployment, work: Path, out_dir: Path) -> None:
    topics = TopicNames(f"demo{int(time.time())}")
    app_id = f"{topics.prefix}-core"
    operator = deployment.operator()
    await create_topics(operator, topics)
    root = OperatorRoot.generate()
    core_key = AgentSigner.generate("core")  # signs every replica record the mirror sends to sites
    core_key_file = work / "core-signing.key"
    raw = core_key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    write_secret(core_key_file, raw.hex().encode() + b"\n")
    http_port = free_port()
    door, client_keys = deployment.api_door(work / "api", API_CLIENTS)
    witness = None
    if deployment.secure:
        origin = f"{app_id}/{topics.prefix}.audit"
        witness = await DemoWitness.start(deployment, work, origin, Path(str(door["audit_key_file"])))
        door = {**door, "insecure_unwitnessed_audit": False, "audit_witnesses": (witness.setting,)}
    core = Core(
        CoreSettings(
            **deployment.core_settings(),  # type: ignore[arg-type]
            **door,  # type: ignore[arg-type]
            topic_prefix=topics.prefix,
            app_id=app_id,
            stages=("verifier", "reconciler", "bridge", "api", "mirror"),
            root_public_key_hex=public_key_bytes(root.public_key).hex(),
            http_port=http_port,
            gap_timeout_ms=30_000,
            core_signing_key_file=str(core_key_file),
        )
    )
    bootstrap = deployment.infra.config.bootstrap
    common = {  # each agent's pseudonym secret is its site's (deployment.agent_settings): never the national one
        "kafka_bootstrap": bootstrap,
        "ingress_topic": topics.ingress,
        "core_public_key_hex": core_key.public_key_bytes.hex(),
        "mqtt_port": deployment.infra.config.mqtt_port,
        "linger_ms": 20,
        "backoff_base_s": 0.2,
        "backoff_cap_s": 2.0,
    }
    gp = AgentHandle.create(work, "riverside-gp", GP, **common, **deployment.agent_settings("riverside-gp", GP))
    home = AgentHandle.create(
        work, "oakfield-home", CARE_HOME, **common, **deployment.agent_settings("oakfield-home", CARE_HOME)
    )
    gateway = AgentHandle.create(
        work, "rm-gateway-7", GATEWAY, transport="mqtt", **common, **deployment.agent_settings("rm-gateway-7", GATEWAY)
    )
    agents = (gp, home, gateway)
    kafka_agents = [(a.settings.agent_id, a.settings.site) for a in (gp, home)]
    await deployment.grant(topics.prefix, app_id, agents=kafka_agents)
    _say_secured(deployment, work)
    say("\nOperator registers each site's signing key (root-signed key events on the keys topic).")
    await publish_key_events(
        operator,
        topics.keys,
        [
            root.register(
                a.settings.agent_id,
                a.public_key,
                0,
                site=a.settings.site,
                capabilities=grantable(a.settings.site),
            )
            for a in agents
        ],
    )
    follower = StateFollower(operator, topics.state)
    await core.start()
    await core.wait_ready(CORE_READY_S)
    await follower.start()
    say(f"Core running: verifier, reconciler, MQTT bridge, mirror, decision API on {deployment.api_url(http_port)}")
    try:
        await gp.start()
        await gateway.start()
        await home.start(kafka_bootstrap="127.0.0.1:1")  # the care home's line is down this morning
        async with aiohttp.ClientSession() as session:
            api = CoreApi.connect(session, deployment, http_port, API_CLIENTS, client_keys)
            pseudonyms = deployment.pseudonyms()  # the operator derives each practice's site secret from it
            await play(
                session, gp, home, gateway, follower, api, out_dir, operator, root, witness,
                site_pseudonymiser=lambda site: SitePseudonymiser(pseudonyms.site_secret(site)),
            )  # fmt: skip
    finally:
        for a in agents:
            await a.stop()
        await follower.stop()
        await core.stop()
        if witness is not None:
            await witness.stop()


def _say_secured(deployment: LocalDeployment, work: Path) -> None:
    if not deployment.secure:
        say("\nWARNING: the demo stack runs --insecure (plaintext, no authentication): debugging only.")
        return
    pki = deployment.infra.config.pki_dir
    say("\nWhat is secured, and where the credentials are:")
    say(f"  - Kafka and Mosquitto accept only mutual TLS from certificates of the deployment CA ({pki}/).")
    say("  - Each core stage is its own principal (core.verifier, core.reconciler, core.bridge, core.api,")
    say("    core.mirror) and each site agent too (certificate CN = agent id); deny-by-default ACLs give each")
    say("    exactly its topics, groups and transactional ids; only the operator writes the keys topic.")
    say("  - The MQTT gateway may publish only on its own ingress topic and read its own acks and site feed.")
    say("  - Each Kafka site reads only its own replica feed (<prefix>.site.<ODS>), which the mirror fills with")
    say("    records signed by the core's key; agents verify every record (a forged one is refused, never applied).")
    say("  - The national pseudonym secret stays in the core; each site's agent holds only its site's secret")
    say(f"    ({deployment.pseudonym_secret_path.parent}/site-<ODS>.secret, `consent-broker keys site-secret`) and")
    say("    names patients by its own pseudonyms: it cannot re-identify the core's or another site's.")
    say("  - The decision API serves HTTPS only; every call carries an OAuth 2.0 access token that a")
    say("    registered client got with a signed JWT (private_key_jwt); the requester's organisation and")
    say("    role must be the client's own: " + "; ".join(f"{c.client_id} ({c.organisation})" for c in API_CLIENTS))
    say(f"    Client registry and keys: {work}/api/ (deleted when the demo ends).")
    say(f"  - Each agent's local API takes only its bearer token: {work}/<agent>/api-token (mode 0600).")
