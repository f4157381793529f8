"""``consent-broker demo``: the main job, a realistic day end to end on local Kafka and Mosquitto."""

from __future__ import annotations

import logging
from pathlib import Path

import click

__all__ = ["command"]


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"), show_default=True)
def command(out: Path) -> None:
    """Three sites (GP and care home over Kafka, a biometric gateway over MQTT) through a day."""
    import uvloop

    from broker.demo import run_demo

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # reconnect noise while the care home is offline
    raise SystemExit(uvloop.run(run_demo(out)))
