"""``consent-broker demo``: a realistic day on local Kafka and Mosquitto, end to end, on the secure stack."""

from broker.demo.day import run_demo

__all__ = ["run_demo"]
