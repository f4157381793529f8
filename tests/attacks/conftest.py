"""Real-stack attacks reuse the pipeline harness (a core on the project's Kafka, the test's own topics)."""

from tests.integration.pipeline.conftest import harness

__all__ = ["harness"]
