"""consent_io.kafka_acl relies on aiokafka internals: fail here, not in production, if they change."""

from __future__ import annotations

import inspect

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import CreateAclsRequest_v1, CreateAclsResponse_v1, DescribeAclsRequest_v1

from consent_io.kafka_acl import _CreateAclsBatch

BINDINGS = [(2, "consent.ingress", 3, "User:gw-1", "*", 4, 3), (5, "consent-core.verifier.", 4, "User:v", "*", 4, 3)]


def test_the_batch_request_negotiates_version_1_and_encodes_every_binding() -> None:
    request = _CreateAclsBatch(BINDINGS)
    struct = request.prepare({30: (1, 3)})  # Kafka 4 serves CreateAcls v1-v3; aiokafka knows v0-v1
    assert isinstance(struct, CreateAclsRequest_v1)
    assert struct.creations == [tuple(b) for b in BINDINGS]
    assert CreateAclsRequest_v1.SCHEMA.names == ("creations",)
    fields = CreateAclsRequest_v1.SCHEMA.fields[0].array_of.names  # type: ignore[attr-defined]
    assert fields == (
        "resource_type",
        "resource_name",
        "resource_pattern_type",
        "principal",
        "host",
        "operation",
        "permission_type",
    )
    assert len(struct.encode()) > 0


def test_the_response_and_describe_shapes_are_what_kafka_acl_reads() -> None:
    assert CreateAclsResponse_v1.SCHEMA.names == ("throttle_time_ms", "creation_responses")
    assert DescribeAclsRequest_v1.SCHEMA.names == (
        "resource_type",
        "resource_name",
        "resource_pattern_type_filter",
        "principal",
        "host",
        "operation",
        "permission_type",
    )


async def test_the_admin_client_still_has_the_private_client_it_sends_through() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:1")  # not started: no connection is made
    assert isinstance(admin._client, AIOKafkaClient)
    assert inspect.iscoroutinefunction(AIOKafkaClient.send)
    assert list(inspect.signature(AIOKafkaClient.send).parameters)[:3] == ["self", "node_id", "request"]
    assert callable(AIOKafkaClient.get_random_node)
