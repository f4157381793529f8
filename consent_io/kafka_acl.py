"""Kafka ACLs through the Admin protocol (CreateAcls, DescribeAcls), which aiokafka 0.14 has no method for.

aiokafka ships the request structs (``aiokafka.protocol.admin.CreateAclsRequest``/``DescribeAclsRequest``)
but its ``AIOKafkaAdminClient`` exposes neither call, so this module sends them through the admin client's
private ``_client.send``: the only place in the product that does. ``tests/unit/test_kafka_acl_protocol.py``
fails if aiokafka changes these internals.

Bindings are plain tuples of Kafka's wire codes (the pure table lives in ``broker/infra/acls.py``)::

    (resource_type, resource_name, pattern_type, principal, host, operation, permission)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import IncompatibleBrokerVersion
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["AclBindingTuple", "KafkaAclError", "create_acls", "describe_acls"]

AclBindingTuple = tuple[int, str, int, str, str, int, int]

_ANY = 1  # ResourceType.ANY, PatternType.ANY, AclOperation.ANY, AclPermissionType.ANY
# One CreateAcls request per this many bindings: small requests, one round trip for a principal's table.
_BATCH = 100
_POLL_S = 0.05  # ACLs reach the broker's authorizer within milliseconds on one machine


class KafkaAclError(Exception):
    """The broker refused to create or list ACLs (not a super user, or no authorizer configured)."""

    reason: ClassVar[str] = "KAFKA_ACL"
    retriable: ClassVar[bool] = False


class _CreateAclsBatch(CreateAclsRequest):  # type: ignore[misc]  # aiokafka ships no type hints
    """aiokafka's CreateAclsRequest carries one binding; this one carries many (version 1: pattern types)."""

    def __init__(self, creations: Sequence[AclBindingTuple]) -> None:
        self._creations = list(creations)

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < 1:
            raise IncompatibleBrokerVersion("CreateAcls v1+ is needed for prefixed patterns")
        return request_struct_class([tuple(c) for c in self._creations])


@asynccontextmanager
async def _admin(conn: KafkaConnection) -> AsyncIterator[AIOKafkaAdminClient]:
    # Until consent_io.kafka.admin exists on this branch (issue 10), the admin client is built here.
    admin = kafka.admin(conn)
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def create_acls(
    conn: KafkaConnection, bindings: Sequence[AclBindingTuple], *, visible_within_s: float = 30.0
) -> int:
    """Create every binding as ``conn``'s principal (a super user); returns how many were sent.

    CreateAcls returns once the controller committed the bindings; a broker's authorizer applies them a moment
    later (metadata log). So this returns only when DescribeAcls, answered from that authorizer, lists them all.
    """
    async with _admin(conn) as admin:
        sent = await _create(admin, bindings)
        deadline = asyncio.get_running_loop().time() + visible_within_s
        for principal in sorted({b[3] for b in bindings}):
            wanted = {b for b in bindings if b[3] == principal}
            while not wanted <= await _describe(admin, principal):
                if asyncio.get_running_loop().time() > deadline:
                    raise KafkaAclError(f"ACLs of {principal} not visible on the broker within {visible_within_s}s")
                await asyncio.sleep(_POLL_S)
        return sent


async def describe_acls(conn: KafkaConnection, principal: str) -> set[AclBindingTuple]:
    """Every ACL binding of ``principal`` (``User:<name>``) on the cluster."""
    async with _admin(conn) as admin:
        return await _describe(admin, principal)


async def _create(admin: AIOKafkaAdminClient, bindings: Sequence[AclBindingTuple]) -> int:
    """Creating an existing binding is a no-op in Kafka, so this is idempotent."""
    for start in range(0, len(bindings), _BATCH):
        batch = bindings[start : start + _BATCH]
        response = await admin._client.send(admin._client.get_random_node(), _CreateAclsBatch(batch))
        for binding, (code, message) in zip(batch, response.creation_responses, strict=True):
            if code != 0:
                raise KafkaAclError(
                    f"Kafka refused ACL {binding}: error {code} {message or ''}; ACLs are created by a super user "
                    "(the operator principal) on a broker with an authorizer"
                )
    return len(bindings)


async def _describe(admin: AIOKafkaAdminClient, principal: str) -> set[AclBindingTuple]:
    request = DescribeAclsRequest(_ANY, None, _ANY, principal, None, _ANY, _ANY)
    response = await admin._client.send(admin._client.get_random_node(), request)
    if response.error_code != 0:
        raise KafkaAclError(
            f"Kafka refused to list ACLs of {principal}: error {response.error_code} {response.error_message}"
        )
    found: set[AclBindingTuple] = set()
    for resource_type, resource_name, pattern_type, acls in response.resources:
        for acl_principal, host, operation, permission in acls:
            found.add((resource_type, resource_name, pattern_type, acl_principal, host, operation, permission))
    return found
