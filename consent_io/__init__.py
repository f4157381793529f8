"""I/O adapters shared by the edge agent and the core: the only place Kafka and MQTT clients are built.

Contract (issue 10, point 3). Every Kafka producer, consumer and admin client and every MQTT client in
``broker``, ``edge_agent``, ``loadtests`` and ``tests`` is built here, from one typed connection-settings
object (:class:`KafkaConnection`, :class:`MqttConnection`), so transport security (TLS, SASL, client
certificates) is added in one place. Reaching into a library's private attributes happens only in
these modules, each with a test that fails if the library changes under us.

Modules:
- ``consent_io.connection``: ``KafkaConnection`` and ``MqttConnection`` (frozen dataclasses; pure).
- ``consent_io.kafka``: ``producer``, ``transactional_producer``, ``consumer``, ``admin``,
  ``assign_all``, ``partitions_for``, ``refresh_metadata``, ``known_partitions``, the one topic reader
  (``KafkaTopicReader``; ``read_to_end`` and its streaming form ``iter_to_end``), ``TopicMissingError``,
  and the Protocols (``RecordSink``, ``TopicReader``) that stages and services depend on.
- ``consent_io.mqtt``: ``client`` (optionally with manual acks), ``ack`` and the ``MqttLink`` Protocol.

In-memory fakes of the Protocols for unit tests: ``tests/fakes.py``.
"""

from __future__ import annotations

from consent_io.connection import KafkaConnection, MqttConnection

__all__ = ["KafkaConnection", "MqttConnection"]
