"""The operator's side of API credentials: register a client (key pair + registry entry), make a token key.

``consent-broker clients add`` calls :func:`add_client`: it generates the client's ECDSA P-256 key pair,
writes the private key (PKCS#8 PEM, mode 0600) for the client's operator to install, and appends the public
key with the client's organisation, roles and scopes to the registry file. Rotation is "add a new client
id, retire the old one" (:func:`remove_client`); an entry removed from the registry can get no new tokens and
its outstanding tokens lapse within the access-token lifetime (5 minutes).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker.auth.registry import ClientRegistry, RegistryError, Scope
from consent_io.secrets import write_secret

__all__ = ["add_client", "new_token_key", "remove_client"]


def _entries(registry: Path) -> list[dict[str, Any]]:
    if not registry.exists():
        return []
    try:
        return list(tomllib.loads(registry.read_text()).get("client", []))
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"cannot read the API client registry {registry}: {exc}") from exc


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise RegistryError(f"cannot write {type(value).__name__} to the registry")


def _write(registry: Path, entries: Iterable[dict[str, Any]]) -> None:
    lines = ["# API clients of the consent broker (broker/auth/registry.py); managed by `consent-broker clients`", ""]
    for entry in entries:
        lines.append("[[client]]")
        lines.extend(f"{key} = {_toml_value(entry[key])}" for key in ("id", "organisation", "roles", "scopes", "jwk"))
        lines.append("")
    text = "\n".join(lines)
    ClientRegistry.from_data(tomllib.loads(text), where=str(registry))  # never write a registry we cannot load
    tmp = registry.with_name(registry.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(registry)


def add_client(
    registry: Path, client_id: str, organisation: str, roles: Iterable[str], scopes: Iterable[str], key_file: Path
) -> None:
    """Register a new client and write its private key to ``key_file`` (0600)."""
    entries = _entries(registry)
    if any(e.get("id") == client_id for e in entries):
        raise RegistryError(f"client {client_id!r} is already registered; remove it first or choose another id")
    for scope in scopes:
        Scope(scope)  # ValueError names the bad scope
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = dict(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk["kid"] = client_id
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_secret(key_file, pem)
    entry = {"id": client_id, "organisation": organisation, "roles": list(roles), "scopes": list(scopes), "jwk": jwk}
    _write(registry, [*entries, entry])


def remove_client(registry: Path, client_id: str) -> bool:
    entries = _entries(registry)
    kept = [e for e in entries if e.get("id") != client_id]
    if len(kept) == len(entries):
        return False
    _write(registry, kept)
    return True


def new_token_key(path: Path) -> None:
    """A fresh Ed25519 token signing key, hex, mode 0600 (every API instance of a deployment shares it)."""
    write_secret(path, os.urandom(32).hex().encode() + b"\n")
