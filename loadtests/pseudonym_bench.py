"""Per-site pseudonyms (issue 12 item 11): what the verifier's translation costs per event.

Measures, best of ``--repeats`` runs over ``--events`` events of 100-event batches from 10 sites:

- ``to_national_us``: one :meth:`consent_wire.site_pseudonyms.CorePseudonyms.to_national` (AES block
  decryption, NHS number check, national HMAC; site key schedules cached);
- ``verify_us`` / ``verify_translate_us``: :meth:`broker.verifier.VerifierCore.process` per event
  without and with the translation (signature, Merkle proofs, chain, authority), and their difference;
- ``encode_verified_us``: one VerifiedEvent v2 record encoded (as the stage writes it).

    .venv/bin/python -m loadtests.pseudonym_bench --out bench/pseudonyms.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

from broker.verifier import VerifierCore
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
    encode_verified_event,
    grantable,
    sign_batch,
)
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = ["main", "run"]

BATCH = 100  # events per batch: the agents' usual flush size under load (loadtests/wire_bench.py)
SITES = tuple(f"A8{i:04d}" for i in range(10))  # GP practice codes: ten sites' key schedules in the cache
BASE_MS = 1_790_000_000_000


def _nhs(n: int) -> str:
    for candidate in range(900_000_000 + 10 * n, 900_000_000 + 10 * n + 10):
        digits = f"{candidate:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:  # modulus 11: a check digit of 10 makes the number invalid
            return f"{digits}{0 if check == 11 else check}"
    raise AssertionError("ten consecutive numbers always hold a valid one")


def _batches(core: CorePseudonyms, root: OperatorRoot, registry: KeyRegistry, events: int) -> list[bytes]:
    out: list[bytes] = []
    per_site = events // len(SITES)
    payload = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, DataClass.ALL, "*", None, None, "GP")
    for s, site in enumerate(SITES):
        signer = AgentSigner.generate(f"agent-{site}")
        registry.apply(root.register(signer.agent_id, signer.public_key_bytes, 0, site=site,
                                     capabilities=grantable(site)))  # fmt: skip
        last, encoded = bytes(32), []
        for i in range(per_site):
            key = core.for_site(site, _nhs(s * per_site + i))
            hlc = (BASE_MS + i) << 16
            event = Event(uuid.uuid4().hex, signer.agent_id, site, i + 1, last, hlc, BASE_MS + i, key, payload)
            data = encode_event(event)
            last = sha256(data).digest()
            encoded.append(data)
        out += [sign_batch(signer, encoded[j : j + BATCH]) for j in range(0, per_site, BATCH)]
    return out


def _best(repeats: int, once: Callable[[], float]) -> float:
    return min(once() for _ in range(repeats))


def run(events: int, repeats: int) -> dict[str, Any]:
    core = CorePseudonyms(os.urandom(32))
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    batches = _batches(core, root, registry, events)
    keys = [(site, core.for_site(site, _nhs(i))) for i, site in enumerate(SITES * (events // len(SITES)))]

    def translate() -> float:
        start = time.perf_counter()
        for site, key in keys:
            core.to_national(site, key)
        return (time.perf_counter() - start) / len(keys) * 1e6

    def verify(pseudonyms: CorePseudonyms | None) -> Callable[[], float]:
        def once() -> float:
            verifier = VerifierCore(registry, pseudonyms=pseudonyms)
            start = time.perf_counter()
            accepted = 0
            for offset, batch in enumerate(batches):
                accepted += len(verifier.process(batch, offset, BASE_MS + 1000).accepted)
            elapsed = time.perf_counter() - start
            assert accepted == events, f"{accepted} of {events} accepted"
            return elapsed / events * 1e6

        return once

    translated = VerifierCore(registry, pseudonyms=core).process(batches[0], 0, BASE_MS + 1000).accepted

    def encode() -> float:
        start = time.perf_counter()
        for _ in range(max(1, events // len(translated))):
            for ve in translated:
                encode_verified_event(ve)
        return (time.perf_counter() - start) / (max(1, events // len(translated)) * len(translated)) * 1e6

    plain, with_translation = _best(repeats, verify(None)), _best(repeats, verify(core))
    return {
        "events": events,
        "batch": BATCH,
        "sites": len(SITES),
        "to_national_us": round(_best(repeats, translate), 3),
        "verify_us": round(plain, 3),
        "verify_translate_us": round(with_translation, 3),
        "translation_overhead_us": round(with_translation - plain, 3),
        "encode_verified_us": round(_best(repeats, encode), 3),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.pseudonym_bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("bench/pseudonyms.json"), help="JSON results file")
    parser.add_argument("--events", type=int, default=20_000, help="events (a multiple of 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is kept")
    args = parser.parse_args(argv)
    result = run(args.events, args.repeats)
    for name, value in result.items():
        print(f"{name:>26}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
