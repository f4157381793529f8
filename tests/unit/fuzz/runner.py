"""Sends fuzz cases through a real aiohttp application on its own event loop and checks each answer."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from yarl import URL

from tests.factories import with_tampered_signature
from tests.openapi import Case, Spec, check_response, dumps

__all__ = ["REQUEST_TIMEOUT_S", "AppRunner", "fuzz_settings"]

REQUEST_TIMEOUT_S = 5.0  # every answer is local and in memory: milliseconds; 5 s is a hang, not a slow machine
F = TypeVar("F", bound=Callable[..., Any])


def fuzz_settings(max_examples: int) -> Callable[[F], F]:
    """Stable in CI: derandomized (the same cases every run), no per-example deadline, no example database."""
    return settings(  # type: ignore[no-any-return]
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class AppRunner:
    """Owns a loop and a TestClient for one application; :meth:`check` sends one case and asserts on the answer.

    ``app`` builds the application on the runner's loop (an outbox or replica opens there); whatever it opens is
    closed by the application's ``on_cleanup``.
    """

    dumps = staticmethod(dumps)

    def __init__(
        self, app: Callable[[], Awaitable[web.Application]], spec: Spec, token: str, *, any_path_401: bool = False
    ) -> None:
        self.spec = spec
        self._token = token
        self._any_path_401 = any_path_401
        self._app = app
        self._loop = asyncio.new_event_loop()
        self.statuses: Counter[int] = Counter()
        self.reached: Counter[tuple[str, int]] = Counter()  # (documented path, status)

    async def _start(self) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(await self._app()))
        await client.start_server()
        return client

    def __enter__(self) -> AppRunner:
        self._client = self._loop.run_until_complete(self._start())
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    def run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def headers(self, case: Case, auth: str) -> dict[str, str]:
        headers = {"Content-Type": case.content_type} if case.body is not None else {}
        if auth == "valid":
            headers["Authorization"] = f"Bearer {self._token}"
        elif auth == "forged":
            headers["Authorization"] = f"Bearer {with_tampered_signature(self._token)}"
        return headers

    async def _send(self, case: Case, auth: str) -> tuple[int, str, bytes]:
        url = URL(case.url, encoded=True)
        async with self._client.request(case.method, url, data=case.body, headers=self.headers(case, auth)) as resp:
            return resp.status, resp.content_type, await resp.read()

    def check(self, case: Case, auth: str) -> tuple[int, bytes]:
        try:
            status, content_type, body = self.run(asyncio.wait_for(self._send(case, auth), REQUEST_TIMEOUT_S))
        except TimeoutError:
            raise AssertionError(f"no answer within {REQUEST_TIMEOUT_S} s: {case!r}") from None
        self.statuses[status] += 1
        op = self.spec.match(case.method, case.url.split("?", 1)[0])
        if op is not None:
            self.reached[op[0], status] += 1
        problems = check_response(self.spec, case, status, content_type, body, any_path_401=self._any_path_401)
        assert problems == [], f"{case!r} auth={auth} -> {status}: {problems}"
        return status, body
