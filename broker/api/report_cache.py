"""Rendered report answers, reused while the report aggregates they were read from are unchanged (pure asyncio).

A report query reads thousands of aggregate rows and renders them (issue 16: the QUICK scale bench's disclosure
report, 2,420 groups and ~340 KB, took p50 ~55 ms). The aggregates change only when the API's report view writes a batch
from the reports topic, so the rendered body is a pure function of (route, validated parameters, view version):
:class:`ReportCache` keeps the latest few bodies under that key. A request never sees a body older than the view
it was answered from: the version is read before the aggregates, and a body is kept only if no batch was
written while it was rendered (later requests ask with the newer version and render anew).

Bounded twice: at most ``entries`` bodies, and none larger than ``max_body_bytes`` is kept (a national report
of many groups is rendered per request rather than pinning megabytes). ``Cache-Control: no-cache`` on a request
asks for a fresh render (HTTP's meaning: do not answer from a cache without revalidating); the benchmark uses it
to report the uncached latency beside the cached one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

import orjson

from broker.views.cache import LruCache

__all__ = ["ReportCache"]


class ReportCache:
    def __init__(self, entries: int = 16, max_body_bytes: int = 1 << 20) -> None:
        self._bodies: LruCache[tuple[Hashable, int], bytes] = LruCache(entries)
        self.max_body_bytes = max_body_bytes

    async def body(
        self,
        key: Hashable,
        version: Callable[[], int | None],
        render: Callable[[], Awaitable[object]],
        *,
        fresh: bool = False,
    ) -> bytes:
        """The JSON body of ``render()`` for ``key`` at the view's current ``version()`` (None: unversioned, never
        cached); rendered anew when ``fresh`` or when no body of this version is kept."""
        before = version()
        if before is not None and not fresh:
            kept = self._bodies.get((key, before))
            if kept is not None:
                return kept
        body = orjson.dumps(await render())
        if before is not None and version() == before and len(body) <= self.max_body_bytes:
            self._bodies.put((key, before), body)
        return body
