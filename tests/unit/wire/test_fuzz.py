"""Fuzz the decoder and verifier with >= 100,000 hostile inputs: only WireError may escape.

Deterministic (seeded) so a failure reproduces; memory is watched with tracemalloc so a
hostile length prefix that made the reader allocate would show up as a peak.
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from consent_wire import (
    BATCH_PAYLOAD_TYPE,
    EVENT_PAYLOAD_TYPE,
    HEADER_BYTES,
    MAGIC,
    AccessRecord,
    BreachReport,
    BreachSeverity,
    DataClass,
    KeyRegistry,
    LegalBasis,
    Objection,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
    WireError,
    decode_event,
    decode_verified_event,
    encode,
    encode_verified_event,
    sign_batch,
    verify_batch,
    verify_event_proof,
)

from .fakes import trust
from .strategies import chain_of, sample_decision

TOTAL_AT_LEAST = 100_000
PEAK_LIMIT_BYTES = 4 * 1024 * 1024  # inputs are < 2 KiB (plus one 8 MiB refused unread): 4 MiB is slack
_BOMBS = [
    b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f",  # zig-zag 2**62: a length no buffer can hold
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # -2**63: most negative long
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # over-long varint
    b"\xfe\xff\xff\xff\x0f",  # 2**31 - 1
    b"\x01",  # -1: negative array block count / length
]
_BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]


def _corpus() -> list[bytes]:
    payloads = [
        sample_decision(1),
        Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, (LegalBasis.S251,)),
        AccessRecord(
            "smartcard-7",
            "A81001",
            "GP",
            True,
            Relationship.LEGITIMATE,
            PurposeOfUse.TREAT,
            (DataClass.GENERAL, DataClass.PSY),
            LegalBasis.CONSENT,
            "RXX",
        ),
        BreachReport(
            "A81001", BreachSeverity.LEVEL_2, "DISCLOSED_IN_ERROR", "letter sent to wrong address", "recalled", True, 1
        ),
    ]
    return chain_of("agent-1", payloads * 3)


def _mutations(rng: random.Random, valid: list[bytes]) -> Iterator[bytes]:
    """Every kind of hostile input, round-robin, forever."""
    while True:
        v = rng.choice(valid)
        i = rng.randrange(len(v))
        yield rng.randbytes(rng.randrange(0, 300))  # random bytes
        yield v[:HEADER_BYTES] + rng.randbytes(rng.randrange(0, 200))  # valid header, random body
        yield v[: rng.randrange(len(v))]  # truncation
        flipped = bytearray(v)
        flipped[i] ^= 1 << rng.randrange(8)
        yield bytes(flipped)  # bit flip
        at = rng.randrange(HEADER_BYTES, len(v))
        yield v[:at] + rng.choice(_BOMBS) + v[at:]  # length-prefix bomb inserted
        yield v[:at] + rng.choice(_BOMBS) + v[at + rng.randrange(1, 4) :]  # bomb overwriting a prefix
        yield rng.randbytes(2) + v[2:]  # wrong magic (almost always)
        yield v[:at] + rng.choice(_BAD_UTF8) + v[at + 1 :]  # bad UTF-8 (lands inside strings often)
        yield v + rng.randbytes(rng.randrange(1, 5))  # trailing garbage


def _structured_batches(rng: random.Random, valid_events: list[bytes], key: str) -> Iterator[bytes]:
    """Well-formed SignedBatch records with hostile field values (ranges, labels, lengths)."""
    longs = [0, 1, -1, 2**63 - 1, -(2**63), 2**32, 7]
    while True:
        events = rng.sample(valid_events, rng.randrange(0, len(valid_events)))
        if events and rng.random() < 0.5:
            i = rng.randrange(len(events))
            events[i] = next(_mutations(rng, [events[i]]))
        yield encode(
            "SignedBatch",
            {
                "agent_id": rng.choice(["agent-1", "", "agent-2", "é" * 50]),
                "key_id": rng.choice([key, "", "x" * rng.randrange(200, 400)]),
                "payload_type": rng.choice([BATCH_PAYLOAD_TYPE, EVENT_PAYLOAD_TYPE, ""]),
                "first_seq": rng.choice(longs),
                "events": events,
                "signature": rng.randbytes(64),
            },
            max_bytes=1 << 20,
        )


def _verify_alone(data: bytes, registry: KeyRegistry) -> None:
    verify_event_proof(decode_verified_event(data), registry)


def _run(fn: Callable[[bytes], object], inputs: Iterator[bytes], n: int, original: bytes | None = None) -> int:
    for _ in range(n):
        data = next(inputs)
        try:
            fn(data)
        except WireError:
            continue
        if original is not None:  # a mutated batch must never verify
            assert data == original
    return n


@pytest.mark.slow
def test_hostile_inputs_raise_only_wire_errors_with_bounded_memory() -> None:
    rng = random.Random(20260401)
    t = trust()
    corpus = _corpus()
    batch = sign_batch(t.signer, corpus)
    small_batch = sign_batch(t.signer, corpus[:2])
    oversize = MAGIC + bytes(8 * 1024 * 1024)  # allocated before tracing: only the decoder's memory counts
    tracemalloc.start()
    try:
        done = _run(decode_event, _mutations(rng, corpus), 70_000)
        done += _run(lambda b: verify_batch(b, t.registry), _mutations(rng, [small_batch]), 20_000, small_batch)
        done += _run(lambda b: verify_batch(b, t.registry), _mutations(rng, [batch]), 12_000, batch)
        done += _run(lambda b: verify_batch(b, t.registry), iter([oversize]), 1)
        structured = _structured_batches(rng, corpus, t.signer.key_id)
        done += _run(lambda b: verify_batch(b, t.registry), structured, 4_000)
        verified = [encode_verified_event(v) for v in verify_batch(batch, t.registry)]
        done += _run(lambda b: _verify_alone(b, t.registry), _mutations(rng, verified), 6_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done >= TOTAL_AT_LEAST
    assert peak < PEAK_LIMIT_BYTES, f"peak {peak} bytes"
