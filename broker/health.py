"""The core's operations endpoint: Prometheus metrics, and ``/health`` for supervisors and load balancers.

``GET /health`` answers 200 with ``{"healthy": true, ...}`` when every stage reports healthy, else 503 with
the stages that are not (issue 13, item 4: while Kafka is unreachable a stage waits and says so here and in
``broker_core_healthy`` instead of exiting). Every other path serves the metrics. Loopback only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Gauge, make_wsgi_app

__all__ = ["CORE_HEALTHY", "HealthServer", "health_document"]

CORE_HEALTHY = Gauge("broker_core_healthy", "1 when every stage of this process reports healthy")


def health_document(stages: Mapping[str, bool]) -> tuple[bool, bytes]:
    healthy = bool(stages) and all(stages.values())
    body = {"healthy": healthy, "stages": dict(sorted(stages.items()))}
    return healthy, json.dumps(body).encode()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


class HealthServer:
    """Serves ``/health`` from ``probe`` (stage -> healthy) and the metrics on ``host``:``port`` in a thread."""

    def __init__(self, port: int, probe: Callable[[], Mapping[str, bool]], host: str = "127.0.0.1") -> None:
        self._probe = probe
        self._metrics = make_wsgi_app()
        self._server = make_server(host, port, self._app, _Server, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health":
            result: Iterable[bytes] = self._metrics(environ, start_response)
            return result
        healthy, body = health_document(self._probe())
        CORE_HEALTHY.set(1 if healthy else 0)
        status = "200 OK" if healthy else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
