"""``consent-broker keys root|register|rotate|revoke|list|site-secret``: agents' signing keys, signed by the
operator root, and each site's pseudonym secret.

The operator root's private key lives in a file (``--root-key``: the raw 32-byte Ed25519 private key in hex,
mode 0600, written by ``keys root``); its public half is the core's ``root_public_key_hex``. Every key event
is signed with it and appended to the keys topic (append-only: a revocation is permanent).

A REGISTER or ROTATE names the key's authority (``consent_wire.authority``): the agent's site (``--site``,
an ODS code) and each capability it may exercise (``--capability``, repeatable). Without ``--capability``
the key may record nothing: authority is granted explicitly, never by default.

``keys site-secret --site ODS --national FILE --out FILE`` derives the site's pseudonym secret from the
national one (``consent_wire.site_pseudonyms``; mode 0600): the agent's ``pseudonym_secret_file``. The
national secret never leaves the core.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.commands.connection import kafka_options
from broker.keys_admin import publish_key_events, read_registry
from broker.site_secrets import read_national_secret, write_site_secret
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from consent_io.secrets import SecretFileError, read_secret, write_secret
from consent_wire.codes import Capability
from consent_wire.dsse import AgentSigner, key_id
from consent_wire.errors import WireError
from consent_wire.keys import KeyRegistry, OperatorRoot

__all__ = ["command"]

_ED25519_KEY_BYTES = 32  # RFC 8032: raw Ed25519 private and public keys are 32 bytes

_prefix = click.option("--prefix", envvar="CONSENT_TOPIC_PREFIX", default="consent", show_default=True)
_root_key = click.option(
    "--root-key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CONSENT_ROOT_KEY_FILE",
    required=True,
    help="The operator root's private key file (hex, mode 0600; `keys root` writes one).",
)
_agent = click.option("--agent", "agent_id", required=True, help="The agent's id.")
_public_key = click.option("--public-key", required=True, help="The agent's raw Ed25519 public key, 64 hex digits.")
_effective = click.option("--effective-ms", type=int, default=None, help="When it takes effect (default: now).")
_site = click.option("--site", required=True, help="ODS code of the agent's site: it may record only for it.")
_capability = click.option(
    "--capability",
    "capabilities",
    multiple=True,
    type=click.Choice([c.value for c in Capability]),
    help="A capability the key may exercise (repeat); TYPE1_OBJECTION only for a GP practice.",
)


def _load_root(path: Path) -> OperatorRoot:
    try:
        raw = bytes.fromhex(read_secret(path, "operator root key").decode("ascii"))
    except SecretFileError as exc:
        raise click.ClickException(str(exc)) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"operator root key file {path} must hold the private key hex-encoded") from exc
    if len(raw) != _ED25519_KEY_BYTES:
        raise click.ClickException(f"operator root key in {path} is {len(raw)} bytes; need {_ED25519_KEY_BYTES}")
    return OperatorRoot.from_private_bytes(raw)


def _public(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise click.BadParameter("not hex", param_hint="--public-key") from exc
    if len(raw) != _ED25519_KEY_BYTES:
        raise click.BadParameter(f"{len(raw)} bytes; need {_ED25519_KEY_BYTES}", param_hint="--public-key")
    return raw


def _agent_signer(path: Path, agent_id: str) -> AgentSigner:
    """The agent's current private key (PKCS#8 PEM, as the edge agent keeps it): it endorses its successor."""
    try:
        key = serialization.load_pem_private_key(read_secret(path, "agent signing key"), password=None)
    except SecretFileError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.ClickException(f"{path} is not a PKCS#8 PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise click.ClickException(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return AgentSigner(agent_id, key)


def _publish(conn: KafkaConnection, prefix: str, signed: bytes) -> None:
    from broker.cli import run_async  # the CLI entry point installs the loop

    run_async(publish_key_events(conn, TopicNames(prefix).keys, [signed]))


def _now(effective_ms: int | None) -> int:
    return effective_ms if effective_ms is not None else time.time_ns() // 1_000_000


def _grant(capabilities: tuple[str, ...]) -> tuple[Capability, ...]:
    return tuple(Capability(c) for c in dict.fromkeys(capabilities))


@click.group("keys")
def command() -> None:
    """Agents' signing keys: register, rotate, revoke and list, signed by the operator root."""


@command.command("root")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def root_command(out: Path) -> None:
    """A new operator root key (mode 0600); prints the public half for the core's root_public_key_hex."""
    if out.exists():
        raise click.ClickException(f"{out} exists already; refusing to overwrite a root key")
    root = OperatorRoot.generate()
    raw = root.signer.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    write_secret(out, raw.hex().encode() + b"\n")
    click.echo(root.signer.public_key_bytes.hex())


@command.command("register")
@kafka_options
@_prefix
@_root_key
@_agent
@_public_key
@_site
@_capability
@_effective
def register_command(
    conn: KafkaConnection,
    prefix: str,
    root_key: Path,
    agent_id: str,
    public_key: str,
    site: str,
    capabilities: tuple[str, ...],
    effective_ms: int | None,
) -> None:
    """Register an agent's first key (or a new one after a revocation) for SITE with its capabilities."""
    root = _load_root(root_key)
    raw = _public(public_key)
    try:
        signed = root.register(agent_id, raw, _now(effective_ms), site=site, capabilities=_grant(capabilities))
    except WireError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish(conn, prefix, signed)
    click.echo(f"registered {agent_id} key {key_id(raw)} site={site} capabilities={','.join(capabilities) or '-'}")


@command.command("rotate")
@kafka_options
@_prefix
@_root_key
@_agent
@click.option(
    "--old-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The agent's current private key (PEM, mode 0600): it endorses the new key.",
)
@_public_key
@_site
@_capability
@_effective
def rotate_command(
    conn: KafkaConnection,
    prefix: str,
    root_key: Path,
    agent_id: str,
    old_key: Path,
    public_key: str,
    site: str,
    capabilities: tuple[str, ...],
    effective_ms: int | None,
) -> None:
    """Replace an agent's key; the new key's site and capabilities are named afresh (they may change)."""
    root = _load_root(root_key)
    raw = _public(public_key)
    old = _agent_signer(old_key, agent_id)
    try:
        signed = root.rotate(old, raw, _now(effective_ms), site=site, capabilities=_grant(capabilities))
    except WireError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish(conn, prefix, signed)
    click.echo(f"rotated {agent_id} to key {key_id(raw)} site={site} capabilities={','.join(capabilities) or '-'}")


@command.command("revoke")
@kafka_options
@_prefix
@_root_key
@_agent
@_public_key
@_effective
def revoke_command(
    conn: KafkaConnection, prefix: str, root_key: Path, agent_id: str, public_key: str, effective_ms: int | None
) -> None:
    """Revoke a key for ever: nothing arriving from EFFECTIVE_MS on is accepted; it can never be registered again."""
    root = _load_root(root_key)
    raw = _public(public_key)
    _publish(conn, prefix, root.revoke(agent_id, raw, _now(effective_ms)))
    click.echo(f"revoked {agent_id} key {key_id(raw)}")


@command.command("site-secret")
@click.option("--site", required=True, help="ODS code of the site whose agents get the secret.")
@click.option(
    "--national",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CONSENT_PSEUDONYM_SECRET_FILE",
    required=True,
    help="The core's national pseudonym secret (hex, mode 0600): its pseudonym_secret_file.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def site_secret_command(site: str, national: Path, out: Path) -> None:
    """Derive a site's pseudonym secret (HKDF of the national one) into OUT, mode 0600: its agents' secret."""
    try:
        write_site_secret(read_national_secret(national), site, out)
    except (SecretFileError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote the pseudonym secret of site {site} to {out} (mode 0600): the agents' pseudonym_secret_file")


@command.command("list")
@kafka_options
@_prefix
@click.option("--root-public-key", envvar="CONSENT_ROOT_PUBLIC_KEY_HEX", required=True, help="64 hex digits.")
def list_command(conn: KafkaConnection, prefix: str, root_public_key: str) -> None:
    """Every agent's keys: id, valid from/until, revoked, site and capabilities (invalid key events counted)."""
    from broker.cli import run_async

    registry, rejected = run_async(read_registry(conn, TopicNames(prefix).keys, _public(root_public_key)))
    for line in render(registry):
        click.echo(line)
    if rejected:
        click.echo(f"{len(rejected)} key event(s) refused: {', '.join(sorted(set(rejected)))}")


def render(registry: KeyRegistry) -> list[str]:
    """One tab-separated line per key period, sorted by agent."""
    lines = []
    for agent_id in registry.agents():
        for p in registry.periods(agent_id):
            caps = ",".join(sorted(p.authority.capabilities)) or "-"
            lines.append(
                f"{agent_id}\t{key_id(p.public_key)}\tfrom={p.valid_from_ms}\tuntil={p.valid_until_ms or '-'}\t"
                f"revoked={p.revoked_ms or '-'}\tsite={p.authority.site or '-'}\tcapabilities={caps}"
            )
    return lines
