"""Where the time goes: the top functions of a cProfile dump, by own time (tottime)."""

from __future__ import annotations

import pstats
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["PRODUCT_PACKAGES", "ProfileRow", "product_functions", "top_functions"]

PRODUCT_PACKAGES = ("/broker/", "/consent_wire/", "/edge_agent/")


@dataclass(frozen=True, slots=True)
class ProfileRow:
    function: str
    calls: int
    own_s: float
    own_pct: float
    cumulative_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _name(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":
        return func  # a built-in
    parts = Path(filename).parts
    tail = "/".join(parts[-2:]) if len(parts) >= 2 else filename
    return f"{tail}:{line}({func})"


def top_functions(path: Path, limit: int = 15) -> list[ProfileRow]:
    """The ``limit`` functions with the most own time; empty if the dump is missing."""
    if not path.exists():
        return []
    raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]
    return [
        ProfileRow(_name(key), int(nc), round(tt, 4), round(100.0 * tt / total, 1), round(ct, 4))
        for key, (_cc, nc, tt, ct, _callers) in rows
    ]


def product_functions(path: Path, limit: int = 12) -> list[ProfileRow]:
    """Our own functions with the most cumulative time: which product code the CPU goes through."""
    if not path.exists():
        return []
    raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    ours = [(key, value) for key, value in raw.items() if any(p in key[0] for p in PRODUCT_PACKAGES)]
    rows = sorted(ours, key=lambda kv: kv[1][3], reverse=True)[:limit]
    return [
        ProfileRow(_name(key), int(nc), round(tt, 4), round(100.0 * tt / total, 1), round(ct, 4))
        for key, (_cc, nc, tt, ct, _callers) in rows
    ]
