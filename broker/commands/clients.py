"""``consent-broker clients add|remove|list|token-key``: the API's client registry (OAuth private_key_jwt)."""

from __future__ import annotations

from pathlib import Path

import click

from broker.auth.provision import add_client, new_token_key, remove_client
from broker.auth.registry import ClientRegistry, RegistryError

__all__ = ["command"]

_registry = click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CONSENT_API_CLIENTS_FILE",
    required=True,
    help="The client registry file the api stage reads (api_clients_file).",
)


@click.group("clients")
def command() -> None:
    """API clients: who may call the decision API, as which organisation, with which roles and scopes."""


@command.command("add")
@_registry
@click.option("--id", "client_id", required=True, help="The OAuth client_id (iss/sub of its assertions).")
@click.option("--organisation", required=True, help="ODS code: the only organisation the client may ask as.")
@click.option("--role", "roles", multiple=True, help="A role its users may assert (repeat).")
@click.option("--scope", "scopes", multiple=True, help="decisions, patient.read, reports, audit.read, admin (repeat).")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Private key (0600).")
def add_command(
    registry: Path, client_id: str, organisation: str, roles: tuple[str, ...], scopes: tuple[str, ...], key_out: Path
) -> None:
    """Generate the client's key pair: the private key to KEY_OUT (hand it to the client), the public key to the
    registry. The running API reads the registry at start: restart it (or roll its instances) to admit the client."""
    try:
        add_client(registry, client_id, organisation, roles, scopes, key_out)
    except (RegistryError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"registered {client_id} ({organisation}); private key {key_out} (mode 0600)")


@command.command("remove")
@_registry
@click.option("--id", "client_id", required=True)
def remove_command(registry: Path, client_id: str) -> None:
    """Revoke a client: no new tokens after the API restarts; tokens already issued lapse within 5 minutes."""
    try:
        removed = remove_client(registry, client_id)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    if not removed:
        raise click.ClickException(f"client {client_id!r} is not registered in {registry}")
    click.echo(f"removed {client_id}")


@command.command("list")
@_registry
def list_command(registry: Path) -> None:
    """Each client: id, organisation, roles and scopes."""
    try:
        loaded = ClientRegistry.load(registry)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    for client in sorted(loaded.clients(), key=lambda c: c.client_id):
        scopes = ",".join(sorted(s.value for s in client.scopes))
        click.echo(
            f"{client.client_id}\t{client.organisation}\troles={','.join(sorted(client.roles))}\tscopes={scopes}"
        )


@command.command("token-key")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def token_key_command(out: Path) -> None:
    """A new access-token signing key (api_token_key_file, mode 0600); rotating it logs every client out."""
    new_token_key(out)
    click.echo(f"wrote {out} (mode 0600)")
