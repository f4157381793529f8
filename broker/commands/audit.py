"""``consent-broker audit keygen|verify|export``: the audit transparency log's key, its verification, JSONL export."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from broker.audit import StoredLog, parse_log
from broker.audit.errors import AuditError
from broker.audit.keyfile import generate_key_file
from broker.audit.note import ALG_ED25519, Verifier
from broker.audit.tlog import LogVerification, WitnessPolicy, verify_log
from broker.commands.connection import kafka_options
from broker.topics import TopicNames
from broker.witness.client import WitnessClient, WitnessRefusedError
from consent_io.connection import KafkaConnection
from consent_io.kafka import read_to_end
from consent_io.tls import client_ssl_context
from consent_wire.errors import WireError

__all__ = ["command"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_prefix = click.option("--prefix", envvar="CONSENT_TOPIC_PREFIX", default="consent", show_default=True)


def _topic_lines(conn: KafkaConnection, prefix: str) -> list[bytes]:
    from broker.cli import run_async  # the CLI entry point installs uvloop

    records = run_async(read_to_end(conn, TopicNames(prefix).audit))
    return [r.value for r in records if r.value is not None]


def _witness_checkpoints(conn: KafkaConnection, urls: tuple[str, ...], keys: list[Verifier], origin: str) -> list[str]:
    from broker.cli import run_async

    tls = client_ssl_context(conn.ca_file, conn.cert_file, conn.key_file) if conn.security_protocol == "SSL" else None
    held: list[str] = []
    for url, key in zip(urls, keys, strict=False):
        try:
            latest = run_async(_latest(WitnessClient(url.rstrip("/"), key, tls), origin))
        except WitnessRefusedError as exc:
            raise click.ClickException(f"cannot read the latest checkpoint from witness {url}: {exc}") from exc
        if latest is not None:
            held.append(latest)
    return held


async def _latest(client: WitnessClient, origin: str) -> str | None:
    try:
        return await client.latest(origin)
    finally:
        await client.close()


@click.group("audit")
def command() -> None:
    """The audit log of decisions and accesses (a Merkle transparency log with witnessed checkpoints)."""


@command.command("keygen")
@click.option("--origin", required=True, help="The log's origin (audit_origin): also the key's name.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Key file (0600).")
def keygen_command(origin: str, out: Path) -> None:
    """Create the audit log key once (audit_key_file); prints the verifier key auditors and witnesses pin."""
    try:
        signer = generate_key_file(out, origin, ALG_ED25519)
    except AuditError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(signer.verifier.vkey())


@command.command("verify")
@kafka_options
@_prefix
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Verify an exported log (JSONL) instead of the topic.")  # fmt: skip
@click.option("--log-key", required=True, help="The log's pinned verifier key (name+id+key; name = origin).")
@click.option("--witness-key", "witness_keys", multiple=True, required=True, help="A pinned witness key (repeat).")
@click.option("--quorum", type=int, default=None, help="Cosignatures required (default: every witness key).")
@click.option("--witness-url", "witness_urls", multiple=True,
              help="Ask this witness (order of --witness-key) for its latest cosigned checkpoint.")  # fmt: skip
@click.option("--checkpoint", "checkpoints", multiple=True, type=_FILE,
              help="A cosigned checkpoint you kept earlier (repeat).")  # fmt: skip
def verify_command(
    conn: KafkaConnection,
    prefix: str,
    file: Path | None,
    log_key: str,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    witness_urls: tuple[str, ...],
    checkpoints: tuple[Path, ...],
) -> None:
    """Print OK, or each finding (TRUNCATION, REWRITE, FORK, REORDERING, ...) and exit 1."""
    try:
        key = Verifier.parse(log_key)
        witnesses = [Verifier.parse(k) for k in witness_keys]
        policy = WitnessPolicy(tuple(witnesses), len(witnesses) if quorum is None else quorum)
        lines = file.read_bytes().splitlines() if file is not None else _topic_lines(conn, prefix)
        stored: StoredLog = parse_log(lines)
        external = [p.read_text() for p in checkpoints] + _witness_checkpoints(conn, witness_urls, witnesses, key.name)
        entries = [(e.index, e.record) for e in stored.entries]
        result: LogVerification = verify_log(key.name, entries, stored.notes, key, policy, external)
    except (WireError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in result.problems:
        click.echo(problem.describe())
    if not result.ok:
        click.echo(f"FAILED: {len(result.problems)} finding(s) in {result.entries} entries", err=True)
        sys.exit(1)
    click.echo(f"OK: {result.entries} entries, all under the cosigned checkpoint of size {result.cosigned_size}")


@command.command("export")
@kafka_options
@_prefix
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File (default stdout).")
def export_command(conn: KafkaConnection, prefix: str, out: Path | None) -> None:
    """Write the audit topic as JSONL, one entry or checkpoint per line, in topic order."""
    lines = _topic_lines(conn, prefix)
    data = b"".join(line + b"\n" for line in lines)
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        click.echo(f"exported {len(lines)} line(s) to {out}", err=True)
