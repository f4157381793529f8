"""The HTTP adapter shared by the core's API and the edge agent's: JSON bodies and one error shape.

Every error either API answers is ``{"reason": CODE, "message": text}``:

- an exception with a ``reason`` and a ``message`` (the wire, core and edge error trees) gets the
  status its API's table gives its class (first ``isinstance`` match; see :func:`status_for`);
- aiohttp's own errors, raised before a handler runs or while reading the body, keep their status
  with a stable code: ``NOT_FOUND`` (404, no such route), ``METHOD_NOT_ALLOWED`` (405, with the
  ``Allow`` header), ``BODY_TOO_LARGE`` (413, over the application's ``client_max_size``);
- anything else is a bug: logged with its traceback, answered ``INTERNAL_ERROR`` (500) without
  detail (a message could carry personal data).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = [
    "HTTP_REASONS",
    "CodedError",
    "StatusTable",
    "error_middleware",
    "error_response",
    "json_response",
    "status_for",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Stable codes for the statuses aiohttp raises itself (documented in docs/reason-codes.md).
HTTP_REASONS: dict[int, str] = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "BODY_TOO_LARGE",
}


class CodedError(Protocol):
    """What every error tree of the project offers: a stable code and a one-line message."""

    reason: str
    message: str


StatusTable = Sequence[tuple[type[Exception], int]]  # (error class, HTTP status), most specific first


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    response = json_response({"reason": reason, "message": message}, status)
    if headers:
        response.headers.update(headers)
    return response


def status_for(exc: Exception, table: StatusTable) -> int | None:
    """The status of the first class in ``table`` that ``exc`` is an instance of (None: not mapped)."""
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return None


def _from_aiohttp(exc: web.HTTPException, request: web.Request) -> web.Response:
    reason = HTTP_REASONS.get(exc.status, f"HTTP_{exc.status}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.method} is not allowed on {request.path}; use {allowed}"
        return error_response(exc.status, reason, message, {"Allow": allowed})
    if isinstance(exc, web.HTTPNotFound):
        return error_response(exc.status, reason, f"no route {request.path}; see the API's documentation")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(exc.status, reason, f"{exc.text}; send a smaller request")
    return error_response(exc.status, reason, exc.reason)


def error_middleware(table: StatusTable) -> Middleware:
    """An aiohttp middleware answering every error in the ``{reason, message}`` shape (see module doc)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _from_aiohttp(exc, request)
        except Exception as exc:
            status = status_for(exc, table)
            if status is None:
                log.exception("http handler failed path=%s", request.path)
                return error_response(500, "INTERNAL_ERROR", "the server failed; the error is logged")
            coded: CodedError = exc  # type: ignore[assignment]  # every class in a table carries both
            return error_response(status, coded.reason, coded.message)

    return errors
