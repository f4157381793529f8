"""``consent-broker reports objections|breaches|disclosures``: governance reports from the events topic.

Each command prints the table, and writes ``<name>.csv`` and ``<name>.json`` (and for objections
``objections.png``, the funnel plot) into ``--out``.
"""

from __future__ import annotations

from pathlib import Path

import click

from broker.commands.connection import kafka_options
from broker.reports import (
    Report,
    ReportInputError,
    breach_incidents,
    breach_summary,
    disclosures,
    funnel_plot_png,
    objection_rates,
    write_report,
)
from broker.settings import load_list_sizes
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from consent_io.kafka import read_to_end
from consent_wire.errors import WireError
from consent_wire.model import Event
from consent_wire.signing import decode_verified_event

__all__ = ["command", "read_events"]

_prefix = click.option("--prefix", envvar="CONSENT_TOPIC_PREFIX", default="consent", show_default=True)
_out = click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory for CSV/JSON/PNG."
)


def read_events(conn: KafkaConnection, prefix: str) -> list[Event]:
    """Every verified event on the events topic (records that do not decode are skipped and counted)."""
    from broker.cli import run_async  # the CLI entry point installs uvloop

    events: list[Event] = []
    skipped = 0
    for record in run_async(read_to_end(conn, TopicNames(prefix).events)):
        try:
            events.append(decode_verified_event(record.value or b"").event)
        except WireError:
            skipped += 1
    if skipped:
        click.echo(f"skipped {skipped} record(s) that are not verified events", err=True)
    return events


def _write(out: Path, name: str, report: Report) -> None:
    click.echo(write_report(out, name, report))


@click.group("reports")
def command() -> None:
    """Governance reports: objection rates (7.15), breaches (rec. 6), disclosures (rec. 19)."""


@command.command("objections")
@kafka_options
@_prefix
@_out
@click.option("--list-sizes", type=click.Path(exists=True, dir_okay=False), required=True,
              help="CSV of practice,list_size (registered patients per practice).")  # fmt: skip
def objections_command(conn: KafkaConnection, prefix: str, out: Path, list_sizes: str) -> None:
    """Objection rate per practice with funnel-plot limits; ALERT_HIGH rows are listed at the end."""
    try:
        report = objection_rates(read_events(conn, prefix), load_list_sizes(list_sizes))
    except ReportInputError as exc:
        raise click.ClickException(str(exc)) from exc
    _write(out, "objections", report)
    (out / "objections.png").write_bytes(funnel_plot_png(report))
    click.echo(f"alerts: {', '.join(report.alerts) if report.alerts else 'none'}")
    click.echo(f"wrote {out}/objections.csv, objections.json, objections.png")


@command.command("breaches")
@kafka_options
@_prefix
@_out
def breaches_command(conn: KafkaConnection, prefix: str, out: Path) -> None:
    """Breaches by organisation and severity, and the incident list for publication."""
    events = read_events(conn, prefix)
    _write(out, "breaches", breach_summary(events))
    _write(out, "breach_incidents", breach_incidents(events))
    click.echo(f"wrote {out}/breaches.csv, breaches.json, breach_incidents.csv, breach_incidents.json")


@command.command("disclosures")
@kafka_options
@_prefix
@_out
def disclosures_command(conn: KafkaConnection, prefix: str, out: Path) -> None:
    """Disclosures by discloser, recipient and purpose."""
    _write(out, "disclosures", disclosures(read_events(conn, prefix)))
    click.echo(f"wrote {out}/disclosures.csv, disclosures.json")
