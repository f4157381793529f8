"""The committed Avro schemas, every version, indexed by name and by fingerprint.

Layout: ``consent_wire/avro_schemas/<Name>/v<N>.avsc``, package data read with
:mod:`importlib.resources` (so an installed wheel carries them); each file is a
complete, standalone schema (named types defined inline), so any Avro
implementation can read it.
The highest version of a name is the *current* one: we write with it and
resolve every older writer version to it when reading.

The fingerprint is CRC-64-AVRO (the Rabin fingerprint of the Avro
specification, "Schema Fingerprints") of the Parsing Canonical Form,
computed here so we do not depend on a library's byte order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

__all__ = [
    "DEFAULT_SCHEMA_DIR",
    "SchemaStore",
    "SchemaVersion",
    "crc64_avro",
    "default_store",
]

DEFAULT_SCHEMA_DIR: Traversable = resources.files("consent_wire") / "avro_schemas"  # package data

# Avro specification, "Schema Fingerprints": the 64-bit Rabin fingerprint's empty value.
_CRC64_EMPTY = 0xC15D213AA4D7A795
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO of ``data`` exactly as the Avro specification's reference code."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One committed schema version, parsed once."""

    name: str  # short name, e.g. "Event"
    version: int
    raw: dict[str, Any]  # the JSON as committed (with docs)
    parsed: dict[str, Any]  # fastavro's parsed form, reused by every read and write
    canonical: str  # Parsing Canonical Form
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO of ``canonical``

    @property
    def full_name(self) -> str:
        return f"{self.raw.get('namespace', '')}.{self.name}".lstrip(".")


class SchemaStore:
    """Every committed version of every schema, by name and by fingerprint."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for sv in versions:
            self._by_name.setdefault(sv.name, {})[sv.version] = sv
            self._by_fingerprint[sv.fingerprint] = sv
        self._current = {name: by[max(by)] for name, by in self._by_name.items()}

    @classmethod
    def load(cls, directory: Traversable) -> SchemaStore:
        """Read and parse every ``<Name>/v<N>.avsc`` under ``directory`` (a path or package resource)."""
        versions = []
        for folder in _sorted(directory.iterdir()):
            if not folder.is_dir():
                continue
            for file in _sorted(folder.iterdir()):
                match = _VERSION_FILE.match(file.name)
                if match is None:
                    continue
                raw = json.loads(file.read_text(encoding="utf-8"))
                versions.append(_parse_version(folder.name, int(match.group(1)), raw))
        if not versions:
            raise FileNotFoundError(f"no Avro schemas found under {directory}")
        return cls(versions)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self, name: str) -> list[SchemaVersion]:
        return [self._by_name[name][v] for v in sorted(self._by_name[name])]

    def current(self, name: str) -> SchemaVersion:
        return self._current[name]

    def get(self, name: str, version: int) -> SchemaVersion:
        return self._by_name[name][version]

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fingerprint)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for name in self.names():
            yield from self.versions(name)


def _sorted(items: Iterator[Traversable]) -> list[Traversable]:
    return sorted(items, key=lambda t: t.name)


def _parse_version(name: str, version: int, raw: dict[str, Any]) -> SchemaVersion:
    parsed = fastavro.parse_schema(raw)
    if not isinstance(parsed, dict):
        raise ValueError(f"schema {name} v{version} is not a record schema")  # noqa: TRY004 - a bad schema file is a bad value
    canonical = to_parsing_canonical_form(parsed)
    fingerprint = crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")
    return SchemaVersion(name, version, raw, parsed, canonical, fingerprint)


@cache
def default_store() -> SchemaStore:
    """The schemas shipped in this package (committed in the repository), loaded once on first use."""
    return SchemaStore.load(DEFAULT_SCHEMA_DIR)
