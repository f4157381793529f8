"""Stage ``api``: the core's HTTP API, as four modules with one concern each.

- :mod:`broker.api.handlers`: the aiohttp routes and handlers over an :class:`ApiBackend`, and the
  table choosing the HTTP status of each error class (no state, no Kafka).
- :mod:`broker.api.codec`: JSON in and out (pure): request parsing with typed errors, answer bodies.
- :mod:`broker.api.views`: the state view and event history that follow the topics (I/O).
- :mod:`broker.api.service`: :class:`ApiService`, the stage wiring: views, audit appender, HTTP site.
"""

from __future__ import annotations

from broker.api.codec import ApiRequestError, HealthInfo
from broker.api.handlers import MAX_BODY_BYTES, STATUS_BY_ERROR, ApiBackend, create_app
from broker.api.service import ApiService

__all__ = [
    "MAX_BODY_BYTES",
    "STATUS_BY_ERROR",
    "ApiBackend",
    "ApiRequestError",
    "ApiService",
    "HealthInfo",
    "create_app",
]
