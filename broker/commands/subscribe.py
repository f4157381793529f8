"""``consent-broker subscribe --topic ...``: follow a topic as a subscriber and print one checked JSON line a record.

    consent-broker infra issue research-hub --role subscriber
    consent-broker subscribe --topic state --tls-dir .cache/infra/default/pki/research-hub [--to-end]
    consent-broker subscribe --topic site:A81001 --core-public-key <hex> --tls-dir <the site agent's folder>

Each line is :meth:`broker.subscribe.Delivered.to_json`: the record decoded and checked against the committed
contract (``consent_wire/topic_schemas``), site feeds verified with the core's key; a refused record is printed
with its ``problem`` and no content. ``--to-end`` stops at the end seen at start (exit status 1 if any record
was refused); otherwise it follows the topic until interrupted.
"""

from __future__ import annotations

import sys

import click
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.commands.connection import kafka_options
from broker.subscribe import Subscriber
from consent_io.connection import KafkaConnection

__all__ = ["command"]


async def _follow(sub: Subscriber) -> int:
    refused = 0
    async with sub:
        async for delivered in sub:
            refused += delivered.problem is not None
            sys.stdout.buffer.write(orjson.dumps(delivered.to_json()) + b"\n")
            sys.stdout.flush()
    return refused


@click.command("subscribe")
@kafka_options
@click.option("--prefix", envvar="CONSENT_TOPIC_PREFIX", default="consent", show_default=True)
@click.option("--topic", "kind", required=True, help="state, shielding, audit, deadletter or site:<ODS>")
@click.option("--core-public-key", default=None, help="Hex Ed25519 public key of the core (site feeds).")
@click.option("--to-end", is_flag=True, help="Stop at the end of the topic as at start instead of following it.")
@click.option("--show-value", is_flag=True, help="Dead letters: include the refused input as base64.")
def command(
    conn: KafkaConnection, prefix: str, kind: str, core_public_key: str | None, to_end: bool, show_value: bool
) -> None:
    """Follow a topic over TLS with your own principal; print each record decoded, checked and verified."""
    from broker.cli import run_async  # the CLI entry point installs uvloop

    try:
        key = None if core_public_key is None else Ed25519PublicKey.from_public_bytes(bytes.fromhex(core_public_key))
        sub = Subscriber(conn, prefix=prefix, kind=kind, core_key=key, follow=not to_end, show_value=show_value)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    refused = run_async(_follow(sub))
    if refused:
        click.echo(f"{refused} record(s) refused (see their problem)", err=True)
        sys.exit(1)
