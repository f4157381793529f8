"""``consent-broker``: the core's command line (infrastructure, topics, pipeline, audit, reports)."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from broker import __version__
from broker.commands.connection import kafka_options
from broker.infra import Infra, InfraConfig, InfraError
from broker.infra.acls import Principal, Role
from broker.infra.security import grant_for_prefix
from broker.settings import STAGES, CoreSettings, SettingsError
from broker.topics import TopicNames, create_topics, describe_topics
from consent_io.connection import KafkaConnection
from consent_io.logs import debug_loggers_from_env, quiet_client_retries

__all__ = ["main"]

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on the product's uvloop loop (consent_io.loop: bounded TLS close), at the entry point."""
    from consent_io import loop

    return loop.run(coro)


def _infra(nodes: int | None, name: str | None, secure: bool | None = None) -> Infra:
    return Infra(InfraConfig.from_env(nodes=nodes, name=name, secure=secure))


# Commands contributed by feature modules (broker/commands/): an explicit table, not a package scan. Each module is
# imported only when its command is named (or help lists them): a stage process (``run``) starts without them.
COMMANDS: Mapping[str, str] = {
    "audit": "broker.commands.audit",
    "clients": "broker.commands.clients",
    "demo": "broker.commands.demo",
    "keys": "broker.commands.keys",
    "reports": "broker.commands.reports",
    "subscribe": "broker.commands.subscribe",
    "witness": "broker.commands.witness",
}


def feature_command(name: str) -> click.Command:
    """The ``command`` of the module :data:`COMMANDS` names for ``name`` (imported now)."""
    command = importlib.import_module(COMMANDS[name]).command
    if not isinstance(command, click.Command) or command.name != name:
        raise TypeError(f"{COMMANDS[name]}.command is not the click command {name!r}")
    return command


class _Cli(click.Group):
    """The top-level group: its own commands plus the feature commands, each imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            self.add_command(feature_command(cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="consent-broker")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (structured key=value).")
def cli(verbose: bool) -> None:
    """Consent and sharing-decision broker for health and social care (core)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
    )
    quiet_client_retries()  # one line per kind of Kafka client retry per 30 s, not one per 100 ms
    debug_loggers_from_env()  # CONSENT_DEBUG_LOGGERS=aiokafka.consumer.group_coordinator,broker.stage ...


@cli.group()
def infra() -> None:
    """Local Kafka (KRaft) and Mosquitto started by the project (CONSENT_KAFKA_PORT, CONSENT_MQTT_PORT)."""


_nodes_option = click.option("--nodes", type=click.Choice(["1", "3"]), default=None, help="Kafka brokers (1 or 3).")
_name_option = click.option("--name", default=None, help="Name of an independent stack (default: 'default').")


@infra.command("up")
@_nodes_option
@_name_option
@click.option(
    "--secure/--insecure",
    default=None,
    help="mTLS with a private CA and ACLs on Kafka and Mosquitto (--insecure: plaintext and anonymous, for "
    "debugging only). Default: CONSENT_INFRA_SECURE.",
)
def infra_up(nodes: str | None, name: str | None, secure: bool | None) -> None:
    """Start Kafka and Mosquitto (fetching jars, installing Mosquitto on first use). Idempotent."""
    stack = _infra(int(nodes) if nodes else None, name, secure)
    try:
        seconds = stack.up()
    except InfraError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(stack.status().render())
    click.echo(f"ready in {seconds:.1f}s; bootstrap {stack.config.bootstrap}")
    if stack.config.secure:
        click.echo(f"mTLS: CA {stack.pki.ca_file}; credentials per principal in {stack.config.pki_dir}/<principal>/")


@infra.command("down")
@_nodes_option
@_name_option
def infra_down(nodes: str | None, name: str | None) -> None:
    """Stop Kafka and Mosquitto; leaves no process behind (data is kept)."""
    stopped = _infra(int(nodes) if nodes else None, name).down()
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@infra.command("status")
@_nodes_option
@_name_option
def infra_status(nodes: str | None, name: str | None) -> None:
    """Versions and health of each service; exit 1 if any is down."""
    status = _infra(int(nodes) if nodes else None, name).status()
    click.echo(status.render())
    if not status.healthy:
        sys.exit(1)


@infra.command("issue")
@_nodes_option
@_name_option
@click.argument("principal")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--site", default="", help="ODS code of an agent's or gateway's site (its replica feed).")
@click.option("--prefix", default="consent", show_default=True, help="Topic prefix its Kafka ACLs are about.")
@click.option("--app-id", default="consent-core", show_default=True, help="The core's app id (groups, txn ids).")
def infra_issue(
    nodes: str | None, name: str | None, principal: str, role: str, site: str, prefix: str, app_id: str
) -> None:
    """Issue PRINCIPAL's certificate (CN = PRINCIPAL) from the stack's CA and grant its role's ACLs.

    Kafka ACLs come from the table in broker/infra/acls.py; MQTT principals (agents, bridge, mirror) are added to
    Mosquitto's ACL file, which a running Mosquitto re-reads.
    """
    stack = _infra(int(nodes) if nodes else None, name)
    if not stack.config.secure:
        raise click.ClickException("this stack runs --insecure: there are no credentials to issue")
    who = Principal(principal, Role(role), site)
    try:
        files = stack.issue(who)
        run_async(grant_for_prefix(stack.kafka_connection("operator"), prefix, app_id, [who]))
    except InfraError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"issued {principal} ({role}{', site ' + site if site else ''}): CA {files.ca_file}")
    click.echo(f"  certificate {files.cert_file}\n  key {files.key_file} (mode 0600; valid 30 days, reissue to renew)")


@cli.group()
def topics() -> None:
    """Topic provisioning from the registry in broker/topics.py."""


_prefix_option = click.option("--prefix", envvar="CONSENT_TOPIC_PREFIX", default="consent", show_default=True)


@topics.command("create")
@kafka_options
@_prefix_option
@click.option("--replication", type=int, default=1, show_default=True)
def topics_create(conn: KafkaConnection, prefix: str, replication: int) -> None:
    """Create every topic the product uses (idempotent)."""
    created = run_async(create_topics(conn, TopicNames(prefix), replication))
    click.echo(f"created {len(created)} topic(s): {', '.join(created) if created else '(all existed)'}")


@topics.command("describe")
@kafka_options
@_prefix_option
def topics_describe(conn: KafkaConnection, prefix: str) -> None:
    """Show partitions, replication and key configs of every registered topic."""
    for name, info in run_async(describe_topics(conn, TopicNames(prefix))).items():
        click.echo(f"{name:<28} " + " ".join(f"{k}={v}" for k, v in sorted(info.items())))


@cli.command("run")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--stages", default=None, help="Comma-separated subset of: " + ", ".join(STAGES))
@click.option("--bootstrap", envvar="CONSENT_BOOTSTRAP", default=None)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT.")
def run_core(config: Path | None, stages: str | None, bootstrap: str | None, metrics_port: int | None) -> None:
    """Run core stages on uvloop until SIGTERM/SIGINT (finish the batch, commit, close)."""
    from broker.runtime import Core

    try:
        settings = CoreSettings.load(config, stages=stages, bootstrap=bootstrap, metrics_port=metrics_port)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        run_async(Core(settings).run_until_stopped())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    cli()
