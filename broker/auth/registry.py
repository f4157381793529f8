"""The API client registry: who may call the core's API, as which organisation, with which roles and scopes.

A TOML file kept by the operator (``consent-broker clients add`` writes it)::

    [[client]]
    id = "rx1-ehr"                      # the OAuth client_id (iss and sub of its assertions)
    organisation = "RX1"                # ODS code: the only organisation this client may ask as
    roles = ["CONSULTANT", "NURSE"]     # roles its users may assert
    scopes = ["decisions", "patient.read"]
    jwk = { kty = "EC", crv = "P-256", x = "...", y = "...", kid = "..." }   # public key (JWKS entry)

Authority comes from this registration, never from a request body (DESIGN.md section 10).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt

__all__ = ["Client", "ClientRegistry", "RegistryError", "Scope"]


class RegistryError(Exception):
    reason = "BAD_CLIENT_REGISTRY"
    retriable = False


class Scope(StrEnum):
    DECISIONS = "decisions"  # ask sharing decisions
    PATIENT_READ = "patient.read"  # read a patient's consent state and access log, "as at" decisions
    REPORTS = "reports"  # governance reports (aggregates)
    AUDIT_READ = "audit.read"  # read the audit trail
    ADMIN = "admin"  # operator actions


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    organisation: str
    roles: frozenset[str]
    scopes: frozenset[Scope]
    jwk: Mapping[str, Any]

    def public_key(self) -> Any:
        return jwt.PyJWK(dict(self.jwk)).key


class ClientRegistry:
    def __init__(self, clients: Mapping[str, Client]) -> None:
        self._clients = dict(clients)

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def __len__(self) -> int:
        return len(self._clients)

    def clients(self) -> list[Client]:
        return list(self._clients.values())

    @classmethod
    def load(cls, path: Path) -> ClientRegistry:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RegistryError(f"cannot read the API client registry {path}: {exc}") from exc
        return cls.from_data(data, where=str(path))

    @classmethod
    def from_data(cls, data: Mapping[str, Any], where: str = "registry") -> ClientRegistry:
        clients: dict[str, Client] = {}
        for n, entry in enumerate(data.get("client", [])):
            client = _client(entry, f"{where}: client #{n + 1}")
            if client.client_id in clients:
                raise RegistryError(f"{where}: client id {client.client_id!r} listed twice")
            clients[client.client_id] = client
        return cls(clients)


def _client(entry: Any, where: str) -> Client:
    if not isinstance(entry, Mapping):
        raise RegistryError(f"{where} must be a table")
    try:
        client_id, organisation = str(entry["id"]), str(entry["organisation"])
        roles = frozenset(str(r) for r in entry.get("roles", []))
        scopes = frozenset(Scope(s) for s in entry.get("scopes", []))
        jwk = dict(entry["jwk"])
    except KeyError as exc:
        raise RegistryError(f"{where} lacks {exc.args[0]!r}") from exc
    except ValueError as exc:
        raise RegistryError(f"{where}: {exc}; scopes are {', '.join(s.value for s in Scope)}") from exc
    try:
        jwt.PyJWK(jwk)
    except jwt.PyJWTError as exc:
        raise RegistryError(f"{where} ({client_id}): unusable public key: {exc}") from exc
    if not client_id or not organisation:
        raise RegistryError(f"{where}: id and organisation must not be empty")
    return Client(client_id, organisation, roles, scopes, jwk)
