"""``consent-broker witness keygen|run``: an audit witness, its own process with its own key and state file."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click
from prometheus_client import start_http_server

from broker.audit.errors import AuditError
from broker.audit.keyfile import generate_key_file, load_signer
from broker.audit.note import ALG_COSIGNATURE, NoteError, Verifier
from broker.audit.witness import WitnessCore
from broker.witness.server import WitnessServer, server_tls
from broker.witness.store import StateFile

__all__ = ["command"]

log = logging.getLogger(__name__)


@click.group("witness")
def command() -> None:
    """A witness of the audit log (C2SP tlog-witness): cosigns checkpoints that extend what it saw."""


@command.command("keygen")
@click.option("--name", required=True, help="The witness's key name (e.g. witness-1.example.nhs.uk).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Key file (0600).")
def keygen_command(name: str, out: Path) -> None:
    """Create the witness's cosigning key; prints its verifier key for the log's and readers' policies."""
    try:
        signer = generate_key_file(out, name, ALG_COSIGNATURE)
    except (AuditError, NoteError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(signer.verifier.vkey())


async def _serve(server: WitnessServer, host: str, port: int, tls_files: tuple[str, str, str]) -> None:
    await server.start(host, port, server_tls(*tls_files))
    click.echo(f"witness listening on https://{host}:{server.port}", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


@command.command("run")
@click.option("--name", required=True, help="The witness's key name (as given to keygen).")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--log-key", "log_keys", multiple=True, required=True, help="Verifier key of a log to witness.")
@click.option("--allow", "allowed", multiple=True, required=True, help="Principal (certificate CN) that may add.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, help="0: any free port (printed).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), required=True, help="The deployment's CA.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--metrics-port", type=int, default=0, show_default=True, help="Prometheus metrics (0: off).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="0.0.0.0 in a pod (deploy/helm).")
def run_command(
    name: str,
    key_file: Path,
    state_file: Path,
    log_keys: tuple[str, ...],
    allowed: tuple[str, ...],
    host: str,
    port: int,
    tls_ca: str,
    tls_cert: str,
    tls_key: str,
    metrics_port: int,
    metrics_host: str,
) -> None:
    """Serve POST /add-checkpoint over mutual TLS until SIGTERM/SIGINT."""
    from broker.cli import run_async

    try:
        signer = load_signer(key_file, name, ALG_COSIGNATURE, "witness key file")
        logs = {v.name: v for v in (Verifier.parse(k) for k in log_keys)}
        store = StateFile(state_file)
        core = WitnessCore(signer, logs, store.load())
    except (AuditError, NoteError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"witness {signer.verifier.vkey()}", err=True)
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_host)  # audit_witness_disagreements_total and process metrics
    run_async(_serve(WitnessServer(core, store, allowed), host, port, (tls_ca, tls_cert, tls_key)))
