"""Subscribers' client: follow the state, shielding, audit, dead-letter topic or a site feed, checked and decoded.

- :mod:`broker.subscribe.decode` (pure): one record -> :class:`Delivered`, checked against the committed
  contract (:mod:`consent_wire.topic_schemas`) and, for site feeds, verified with the core's key.
- :mod:`broker.subscribe.follow` (I/O): :class:`Subscriber`, an async iterator over a topic over TLS.
- ``consent-broker subscribe --topic state|shielding|audit|deadletter|site:<ODS>`` prints one JSON line each.
"""

from __future__ import annotations

from broker.subscribe.decode import KINDS, Delivered, decode_record
from broker.subscribe.follow import Subscriber, topic_for

__all__ = ["KINDS", "Delivered", "Subscriber", "decode_record", "topic_for"]
