"""``consent-broker demo``: the main job, a realistic day end to end on local Kafka and Mosquitto."""

from __future__ import annotations

import logging
from pathlib import Path

import click

__all__ = ["command"]


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"), show_default=True)
@click.option(
    "--kafka-port", type=int, default=29092, show_default=True, envvar="CONSENT_DEMO_KAFKA_PORT"
)  # = day.DEMO_KAFKA_PORT
@click.option(
    "--mqtt-port", type=int, default=21883, show_default=True, envvar="CONSENT_DEMO_MQTT_PORT"
)  # = day.DEMO_MQTT_PORT
def command(out: Path, kafka_port: int, mqtt_port: int) -> None:
    """Three sites (GP and care home over Kafka, a biometric gateway over MQTT) through a day, on a secure stack."""
    from broker.demo import run_demo
    from consent_io import loop

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # reconnect noise while the care home is offline
    raise SystemExit(loop.run(run_demo(out, kafka_port, mqtt_port)))
