"""``edge-agent``: run the agent, enqueue events from the command line, make keys, show status."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import click

from consent_io.logs import quiet_client_retries
from consent_wire.errors import ValidationError
from edge_agent.config import Settings, load_settings
from edge_agent.errors import EdgeError

__all__ = ["cli", "main"]

T = TypeVar("T")
log = logging.getLogger("edge_agent")


def _version() -> str:
    try:
        return metadata.version("consent-broker")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config, os.environ)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from consent_io import loop

    return loop.run(coro)


@click.group()
@click.version_option(_version(), prog_name="edge-agent")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """Site edge agent of the consent broker: durable outbox, publisher and offline replica."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    quiet_client_retries()  # one line per kind of Kafka client retry per 30 s, not one per 100 ms


_config_option = click.option(
    "--config", "config", type=click.Path(path_type=Path, dir_okay=False), help="TOML settings file."
)


@cli.command()
@_config_option
def run(config: Path | None) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    settings = _settings(config)
    _run(_serve(settings))


async def _serve(settings: Settings) -> None:
    from edge_agent.app import Agent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        agent = await Agent.start(settings)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    await stop.wait()
    log.info("signal received; shutting down")
    await agent.stop()


@cli.command()
@_config_option
@click.argument("event_file", type=click.File("rb"))
def submit(config: Path | None, event_file: Any) -> None:
    """Durably enqueue the submission(s) in EVENT_FILE ('-' for stdin) without the HTTP server.

    The file holds one submission object or {"events": [...]}. Prints the receipts as JSON.
    """
    settings = _settings(config)
    body = event_file.read()
    try:
        receipts = _run(_submit(settings, body))
    except (ValidationError, EdgeError) as exc:
        raise click.ClickException(f"{exc.reason}: {exc.message}") from exc
    click.echo(json.dumps({"receipts": receipts}))


async def _submit(settings: Settings, body: bytes) -> list[dict[str, object]]:
    from edge_agent.app import open_intake
    from edge_agent.submission import load_json

    outbox, intake = await open_intake(settings)
    try:
        doc = load_json(body)
        if isinstance(doc, dict) and "events" in doc:
            receipts = await intake.submit_json_batch(doc)
        else:
            receipts = [await intake.submit_json(doc)]
    finally:
        await outbox.close()
    return [{"event_id": r.event_id, "seq": r.seq} for r in receipts]


@cli.command()
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True)
def keygen(out: Path) -> None:
    """Write a new Ed25519 signing key to OUT (mode 0600); print the public key hex."""
    from edge_agent.wire import generate_signing_key

    try:
        public = generate_signing_key(out)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(public.hex())


@cli.command()
@_config_option
def status(config: Path | None) -> None:
    """Print the outbox backlog, disk use and alarm state as JSON."""
    settings = _settings(config)
    click.echo(json.dumps(_run(_status(settings))))


async def _status(settings: Settings) -> dict[str, object]:
    from edge_agent.app import open_outbox

    outbox = await open_outbox(settings)
    try:
        s = await outbox.stats()
    finally:
        await outbox.close()
    return {
        "agent_id": settings.agent_id,
        "site": settings.site,
        "pending": s.pending,
        "next_seq": s.next_seq,
        "acked_seq": s.acked_seq,
        "used_bytes": s.used_bytes,
        "cap_bytes": s.cap_bytes,
        "quarantined": s.quarantined,
    }


def main() -> None:
    """Console entry point: the product's uvloop loop (consent_io.loop) is used here and only here."""
    cli()
