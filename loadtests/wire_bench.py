"""Wire protocol benchmark: microseconds per event to sign+encode and to verify+decode.

Modes: a signature per event (a batch of one), and signed batches of 10, 100 and 1000
events (one Ed25519 signature over a Merkle root). Sign+encode covers Avro encoding of
every event plus batch signing; verify+decode covers :func:`consent_wire.verify_batch`
(decode of the batch and every event, label checks, Merkle root, key lookup, signature,
inclusion proofs). Best of ``--repeats`` runs, so noise from other processes is cut.

    .venv/bin/python -m loadtests.wire_bench --out bench/wire.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from consent_wire import (
    AgentSigner,
    ConsentDecision,
    ConsentDirective,
    DataClass,
    Event,
    KeyRegistry,
    OperatorRoot,
    PurposeOfUse,
    encode_event,
    grantable,
    sign_batch,
    verify_batch,
)

__all__ = ["GOAL_VERIFY_US_AT_100", "Row", "main", "run"]

GOAL_VERIFY_US_AT_100 = 15.0  # the wire brief's target for verify+decode at batch size 100
BATCH_SIZES = (1, 10, 100, 1000)


def _events(n: int) -> list[Event]:
    payload = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, DataClass.ALL, "*", None, None, "GP")
    return [
        Event(f"{i:032x}", "agent-1", "A81001", i + 1, bytes(32), (1_000 + i) << 16, 1_000 + i, "ab" * 16, payload)
        for i in range(n)
    ]


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _chain(events: list[Event]) -> list[Event]:
    out, prev = [], bytes(32)
    for e in events:
        linked = Event(e.event_id, e.agent_id, e.site, e.seq, prev, e.hlc, e.recorded_ms, e.patient_key, e.payload)
        prev = hashlib.sha256(encode_event(linked)).digest()
        out.append(linked)
    return out


@dataclass(frozen=True, slots=True)
class Row:
    mode: str
    batch_size: int
    events: int
    sign_encode_us_per_event: float
    verify_decode_us_per_event: float
    batch_bytes_per_event: float


def _measure(signer: AgentSigner, registry: KeyRegistry, events: list[Event], size: int, repeats: int) -> Row:
    n = len(events)
    chunks = [events[i : i + size] for i in range(0, n, size)]

    def sign_all() -> list[bytes]:
        return [sign_batch(signer, [encode_event(e) for e in c], first_seq=c[0].seq) for c in chunks]

    batches = sign_all()

    def verify_all() -> None:
        for b in batches:
            verify_batch(b, registry)

    return Row(
        mode="per-event" if size == 1 else f"batch-{size}",
        batch_size=size,
        events=n,
        sign_encode_us_per_event=round(_best(sign_all, repeats) / n * 1e6, 2),
        verify_decode_us_per_event=round(_best(verify_all, repeats) / n * 1e6, 2),
        batch_bytes_per_event=round(sum(map(len, batches)) / n, 1),
    )


def run(n_events: int, repeats: int) -> list[Row]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    signer = AgentSigner.generate("agent-1")
    registry.apply(
        root.register("agent-1", signer.public_key_bytes, 0, site="A81001", capabilities=grantable("A81001"))
    )
    events = _chain(_events(n_events))
    return [_measure(signer, registry, events, size, repeats) for size in BATCH_SIZES]


def _report(rows: list[Row], repeats: int) -> dict[str, Any]:
    at_100 = next(r for r in rows if r.batch_size == 100).verify_decode_us_per_event
    return {
        "benchmark": "wire",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "results": [asdict(r) for r in rows],
        "goal": {
            "verify_decode_us_per_event_at_batch_100": GOAL_VERIFY_US_AT_100,
            "measured": at_100,
            "met": at_100 <= GOAL_VERIFY_US_AT_100,
        },
    }


def _table(rows: list[Row]) -> str:
    lines = [f"{'mode':<10} {'sign+encode us/ev':>18} {'verify+decode us/ev':>20} {'bytes/ev':>9}"]
    lines.extend(
        f"{r.mode:<10} {r.sign_encode_us_per_event:>18.2f} "
        f"{r.verify_decode_us_per_event:>20.2f} {r.batch_bytes_per_event:>9.1f}"
        for r in rows
    )
    at_100 = next(r for r in rows if r.batch_size == 100).verify_decode_us_per_event
    verdict = "met" if at_100 <= GOAL_VERIFY_US_AT_100 else "MISSED"
    lines.append(f"goal: verify+decode at batch 100 <= {GOAL_VERIFY_US_AT_100} us/event: {verdict} ({at_100})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.wire_bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/wire.json"), help="JSON results file")
    parser.add_argument("--events", type=int, default=10_000, help="events per mode (multiple of 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is kept")
    args = parser.parse_args(argv)
    rows = run(args.events, args.repeats)
    print(_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_report(rows, args.repeats), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
