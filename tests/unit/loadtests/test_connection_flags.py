"""The bench child tools (pass-through, two-hop, quix peer) read back exactly the connection their parent gave."""

from __future__ import annotations

import argparse

from consent_io.connection import KafkaConnection
from loadtests.passthrough import add_connection_arguments, connection_args, connection_from


def _parsed(argv: list[str]) -> KafkaConnection:
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    return connection_from(parser.parse_args(argv))


def test_mutual_tls_flags_round_trip() -> None:
    conn = KafkaConnection("127.0.0.1:19092", "SSL", "/pki/ca.pem", "/pki/bench.pem", "/pki/bench.key")
    assert _parsed(["--bootstrap", conn.bootstrap, *connection_args(conn)]) == conn


def test_no_tls_flags_is_plaintext_for_the_security_cost_bench() -> None:
    assert _parsed(["--bootstrap", "127.0.0.1:29892"]) == KafkaConnection("127.0.0.1:29892")
    assert connection_args(KafkaConnection("127.0.0.1:29892")) == []
