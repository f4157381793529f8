"""``consent-broker audit verify|export``: check the tamper-evident audit log, or export it as JSONL."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from broker.audit import StoredLog, describe_problem, parse_log, verify_stored
from broker.commands.connection import kafka_options
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from consent_io.kafka import read_to_end
from consent_wire.errors import WireError

__all__ = ["command"]

_prefix = click.option("--prefix", envvar="CONSENT_TOPIC_PREFIX", default="consent", show_default=True)


def _topic_lines(conn: KafkaConnection, prefix: str) -> list[bytes]:
    from broker.cli import run_async  # the CLI entry point installs uvloop

    records = run_async(read_to_end(conn, TopicNames(prefix).audit))
    return [r.value for r in records if r.value is not None]


@click.group("audit")
def command() -> None:
    """The audit log of decisions and accesses (hash chain with signed checkpoints)."""


@command.command("verify")
@kafka_options
@_prefix
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Verify an exported log (JSONL) instead of the topic.")  # fmt: skip
@click.option("--public-key", default=None, help="Hex Ed25519 key every checkpoint must be signed by.")
def verify_command(conn: KafkaConnection, prefix: str, file: Path | None, public_key: str | None) -> None:
    """Print OK, or each problem (EDITED, DELETED, REORDERED, ...) and exit 1."""
    try:
        lines = file.read_bytes().splitlines() if file is not None else _topic_lines(conn, prefix)
        stored: StoredLog = parse_log(lines)
        result = verify_stored(stored, bytes.fromhex(public_key) if public_key else None)
    except (WireError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in result.problems:
        click.echo(describe_problem(problem))
    if not result.ok:
        click.echo(f"FAILED: {len(result.problems)} problem(s) in {result.entries_checked} entries", err=True)
        sys.exit(1)
    click.echo(f"OK: {result.entries_checked} entries, {result.checkpoints_checked} checkpoints")


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
