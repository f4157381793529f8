"""Real-stack attacks reuse the pipeline harness (a core on the project's Kafka, the test's own topics) and the
edge kit (real edge agents with keys, certificates and ACLs)."""

from tests.integration.edge.conftest import harness, kit

__all__ = ["harness", "kit"]
