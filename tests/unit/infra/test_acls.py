"""The ACL table: each principal gets exactly the rights listed, written out here by hand."""

from __future__ import annotations

import pytest

from broker.infra.acls import (
    AclOperation,
    Deployment,
    KafkaAcl,
    PatternType,
    Principal,
    ResourceType,
    Role,
    core_principal,
    default_principals,
    kafka_acls,
    mosquitto_acl_file,
    mqtt_acl_lines,
    super_users,
)

D = Deployment("pfx", "app")
T, G, C, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, ResourceType.TRANSACTIONAL_ID
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
R, W, DESC, IDEM = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.IDEMPOTENT_WRITE
CREATE = AclOperation.CREATE


def _rights(role: Role, name: str = "p") -> set[tuple[ResourceType, str, PatternType, AclOperation]]:
    acls = kafka_acls(Principal(name, role), D)
    assert all(a.principal == f"User:{name}" and a.host == "*" and a.permission == 3 for a in acls)
    assert len(set(acls)) == len(acls)
    return {(a.resource_type, a.resource_name, a.pattern_type, a.operation) for a in acls}


EXPECTED = {
    Role.VERIFIER: {
        (T, "pfx.ingress", LIT, R),
        (T, "pfx.keys", LIT, R),
        (T, "pfx.chain", LIT, R),
        (T, "pfx.chain", LIT, W),
        (T, "pfx.events", LIT, W),
        (T, "pfx.deadletter", LIT, W),
        (T, "pfx.", PRE, DESC),
        (G, "app.verifier", LIT, R),
        (X, "app.verifier.", PRE, W),
    },
    Role.RECONCILER: {
        (T, "pfx.events", LIT, R),
        (T, "pfx.state", LIT, R),
        (T, "pfx.state", LIT, W),
        (T, "pfx.shielding", LIT, W),
        (T, "pfx.deadletter", LIT, W),
        (T, "pfx.", PRE, DESC),
        (G, "app.reconciler", LIT, R),
        (X, "app.reconciler.", PRE, W),
    },
    Role.REPORTS: {  # issue 16: the streaming reports stage; never the state, shielding or audit topics
        (T, "pfx.events", LIT, R),
        (T, "pfx.report-memory", LIT, R),
        (T, "pfx.report-memory", LIT, W),
        (T, "pfx.reports", LIT, W),
        (T, "pfx.", PRE, DESC),
        (G, "app.reports", LIT, R),
        (X, "app.reports.", PRE, W),
    },
    Role.BRIDGE: {
        (T, "pfx.ingress", LIT, W),
        (T, "pfx.keys", LIT, R),
        (T, "pfx.deadletter", LIT, W),
        (T, "pfx.", PRE, DESC),
        (C, "kafka-cluster", LIT, IDEM),
    },
    Role.API: {
        (T, "pfx.state", LIT, R),
        (T, "pfx.events", LIT, R),
        (T, "pfx.audit", LIT, R),
        (T, "pfx.audit", LIT, W),
        (T, "pfx.reports", LIT, R),  # issue 16: reports from the aggregates
        (T, "pfx.audit-requests", LIT, R),  # issue 16: the elected appender reads every instance's records
        (T, "pfx.audit-requests", LIT, W),  # issue 16: every API instance writes its audit records
        (T, "pfx.", PRE, DESC),
        (G, "app.api", LIT, R),  # the audit appenders' election (issue 15)
        (G, "app.api.audit-requests", LIT, R),  # issue 16: the appender's offsets, in its transactions
        (X, "app.api.", PRE, W),  # the audit appenders' shared transactional id: the fence
        (C, "kafka-cluster", LIT, IDEM),
    },
    Role.MIRROR: {
        (T, "pfx.events", LIT, R),
        (T, "pfx.state", LIT, R),
        (T, "pfx.shielding", LIT, R),
        (T, "pfx.", PRE, DESC),
        (T, "pfx.site.", PRE, CREATE),
        (T, "pfx.site.", PRE, W),
        (C, "kafka-cluster", LIT, IDEM),
    },
    Role.AGENT: {(T, "pfx.ingress", LIT, W), (C, "kafka-cluster", LIT, IDEM)},
    Role.SUBSCRIBER: {(T, "pfx.state", LIT, R), (T, "pfx.shielding", LIT, R), (G, "p.", PRE, R)},
    Role.WITNESS: {(T, "pfx.audit", LIT, R), (G, "p.", PRE, R)},
    Role.MONITOR: {(T, "pfx.deadletter", LIT, R), (G, "p.", PRE, R)},
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_gets_exactly_its_listed_rights(role: Role) -> None:
    assert _rights(role) == EXPECTED[role]


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.BROKER])
def test_super_users_need_no_acl(role: Role) -> None:
    assert kafka_acls(Principal("x", role), D) == ()


def test_only_the_operator_writes_the_keys_topic() -> None:
    for role in EXPECTED:
        assert (T, "pfx.keys", LIT, W) not in _rights(role)
    assert super_users(default_principals()) == "User:operator;User:broker"


def test_only_the_api_reads_or_writes_audit_requests_and_its_group() -> None:
    for role in EXPECTED:
        touches = {r for r in _rights(role) if r[1] in ("pfx.audit-requests", "app.api.audit-requests")}
        assert bool(touches) == (role == Role.API), role


def test_agents_subscribers_and_witnesses_never_read_or_write_outside_their_topics() -> None:
    assert not any(r[1] in ("pfx.state", "pfx.shielding", "pfx.audit", "pfx.events") for r in _rights(Role.AGENT))
    assert not any(r[3] == W for r in _rights(Role.SUBSCRIBER) | _rights(Role.WITNESS))


def test_the_table_follows_the_deployment_prefix_and_app_id() -> None:
    acls = kafka_acls(core_principal(Role.VERIFIER), Deployment("t123", "core-x"))
    names = {a.resource_name for a in acls}
    assert names == {
        "t123.ingress",
        "t123.keys",
        "t123.chain",
        "t123.events",
        "t123.deadletter",
        "t123.",
        "core-x.verifier",
        "core-x.verifier.",
    }
    assert KafkaAcl("User:core.verifier", X, "core-x.verifier.", PRE, W) in acls


def test_default_principals_are_the_super_users_and_one_per_core_stage() -> None:
    assert [p.name for p in default_principals()] == [
        "operator",
        "broker",
        "core.verifier",
        "core.reconciler",
        "core.reports",
        "core.bridge",
        "core.api",
        "core.mirror",
    ]


def test_a_gateway_uses_only_its_own_mqtt_topics() -> None:
    assert mqtt_acl_lines(Principal("gw-1", Role.AGENT, site="SITE1")) == (
        "user gw-1",
        "topic write consent/ingress/gw-1",
        "topic read consent/ack/gw-1",
        "topic read consent/state/SITE1/+",
        "topic read consent/shielding/SITE1/+",
    )


def test_the_bridge_and_mirror_mqtt_rights_and_nobody_else() -> None:
    assert mqtt_acl_lines(core_principal(Role.BRIDGE)) == (
        "user core.bridge",
        "topic read consent/ingress/+",
        "topic write consent/ack/+",
    )
    assert mqtt_acl_lines(core_principal(Role.MIRROR)) == (
        "user core.mirror",
        "topic write consent/state/#",
        "topic write consent/shielding/#",
    )
    for role in (Role.VERIFIER, Role.RECONCILER, Role.API, Role.SUBSCRIBER, Role.WITNESS):
        assert mqtt_acl_lines(Principal("x", role)) == ()
    assert mqtt_acl_lines(Principal("operator", Role.OPERATOR)) == ("user operator", "topic readwrite #")


def test_the_acl_file_has_no_pattern_lines_that_would_apply_to_every_user() -> None:
    text = mosquitto_acl_file(
        [Principal("gw-1", Role.AGENT, "S"), core_principal(Role.BRIDGE), Principal("sub", Role.SUBSCRIBER)]
    )
    assert "pattern" not in text
    assert "user sub" not in text
    assert text.index("user core.bridge") < text.index("user gw-1")


def test_an_agent_reads_only_its_own_sites_replica_feed() -> None:
    rights = {
        (a.resource_type, a.resource_name, a.pattern_type, a.operation)
        for a in kafka_acls(Principal("gw-1", Role.AGENT, site="A81001"), D)
    }
    assert rights == {(T, "pfx.ingress", LIT, W), (C, "kafka-cluster", LIT, IDEM), (T, "pfx.site.A81001", LIT, R)}
    reads = [r for r in rights if r[3] == R]
    assert reads == [(T, "pfx.site.A81001", LIT, R)]  # literal: not pfx.site.A81001X, not another site


def test_an_agent_without_a_site_reads_nothing_on_kafka() -> None:
    assert not any(r[3] == R for r in _rights(Role.AGENT))


def test_only_the_mirror_may_create_or_write_site_feeds() -> None:
    for role in EXPECTED:
        feed_writes = {r for r in _rights(role) if r[1].startswith("pfx.site") and r[3] in (W, CREATE)}
        assert bool(feed_writes) is (role is Role.MIRROR), role
