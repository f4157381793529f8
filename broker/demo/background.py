"""Neighbouring practices' objections, so the objection-rate funnel plot has a region to compare with.

Each practice is a signing agent like any other (registered key, chained, signed batches, patients named by
its own site's pseudonyms: ``site_pseudonymiser``), sent straight to the ingress topic; one practice has an
abnormally high rate, which the report should flag.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable

from broker.demo.people import test_nhs_number
from broker.keys_admin import publish_key_events
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_wire.authority import grantable
from consent_wire.avro_codec import encode_event
from consent_wire.codes import ObjectionAction, ObjectionKind
from consent_wire.dsse import AgentSigner
from consent_wire.keys import OperatorRoot
from consent_wire.model import Event, Objection
from consent_wire.signing import sign_batch

__all__ = ["PRACTICES", "send_background"]

# practice -> (registered list size, objectors); national NDOP rates were ~5% in 2024 (NHS England)
PRACTICES = {
    "A81001": (8400, 395),  # Riverside's earlier objections (the demo's GP agent adds today's)
    "B82005": (6200, 300),
    "B82018": (9100, 470),
    "B82033": (3800, 170),
    "B82041": (12500, 640),
    "B82057": (5400, 450),  # abnormally high: the report should raise an alert
    "B82064": (7700, 350),
}


async def send_background(
    conn: KafkaConnection,
    keys_topic: str,
    ingress: str,
    root: OperatorRoot,
    now_ms: int,
    site_pseudonymiser: Callable[[str], Callable[[str], str]],
) -> int:
    rng = random.Random(7)  # reproducible region
    producer = kafka.producer(conn, enable_idempotence=True, acks="all", linger_ms=20)
    signers = {site: AgentSigner.generate(f"practice-{site.lower()}") for site in PRACTICES}
    await publish_key_events(
        conn,
        keys_topic,
        [
            root.register(s.agent_id, s.public_key_bytes, 0, site=site, capabilities=grantable(site))
            for site, s in signers.items()
        ],
    )
    await producer.start()
    total = 0
    try:
        for number, (site, (_, objectors)) in enumerate(PRACTICES.items()):
            signer, pseudonymise = signers[site], site_pseudonymiser(site)
            prev, events = bytes(32), []
            for seq in range(1, objectors + 1):
                kind = ObjectionKind.NDOP if rng.random() < 0.7 else ObjectionKind.TYPE1
                key = pseudonymise(test_nhs_number(100_000 + number * 10_000 + seq))  # the practice's own patients
                event = Event(
                    uuid.uuid4().hex, signer.agent_id, site, seq, prev, (now_ms - 86_400_000 + seq) << 16,
                    now_ms - 86_400_000 + seq, key, Objection(kind, ObjectionAction.REGISTER, ()),
                )  # fmt: skip
                data = encode_event(event)
                prev = hashlib.sha256(data).digest()
                events.append(data)
            for i in range(0, len(events), 200):
                await producer.send(ingress, sign_batch(signer, events[i : i + 200]), key=signer.agent_id.encode())
            total += len(events)
        await producer.flush()
    finally:
        await producer.stop()
    return total
