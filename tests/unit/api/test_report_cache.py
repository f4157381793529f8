"""The rendered-report cache: one render per (key, version of the aggregates), bounded, never stale."""

from __future__ import annotations

import orjson

from broker.api.report_cache import ReportCache


class Renders:
    """A render that counts its calls and answers the current ``value``."""

    def __init__(self) -> None:
        self.calls = 0
        self.value: object = {"rows": [1]}

    async def __call__(self) -> object:
        self.calls += 1
        return self.value


async def test_a_body_is_rendered_once_per_key_and_version() -> None:
    cache, render, version = ReportCache(), Renders(), [7]
    first = await cache.body("disclosures", lambda: version[0], render)
    again = await cache.body("disclosures", lambda: version[0], render)
    assert (first, again, render.calls) == (b'{"rows":[1]}', first, 1)
    await cache.body("breaches", lambda: version[0], render)  # another key: its own render
    assert render.calls == 2
    render.value, version[0] = {"rows": [1, 2]}, 8  # the aggregates changed
    assert orjson.loads(await cache.body("disclosures", lambda: version[0], render)) == {"rows": [1, 2]}
    assert render.calls == 3


async def test_fresh_renders_anew_and_replaces_the_kept_body() -> None:
    cache, render = ReportCache(), Renders()
    await cache.body("k", lambda: 1, render)
    render.value = {"rows": []}
    assert await cache.body("k", lambda: 1, render, fresh=True) == b'{"rows":[]}'
    assert await cache.body("k", lambda: 1, render) == b'{"rows":[]}'
    assert render.calls == 2


async def test_a_body_rendered_across_a_version_change_is_not_kept() -> None:
    cache, version = ReportCache(), [1]

    async def render() -> object:
        version[0] += 1  # a batch of aggregates written while the report was read
        return {"v": version[0]}

    assert await cache.body("k", lambda: version[0], render) == b'{"v":2}'
    assert await cache.body("k", lambda: version[0], render) == b'{"v":3}'  # rendered again: nothing was kept


async def test_unversioned_and_oversized_bodies_are_never_kept() -> None:
    cache, render = ReportCache(max_body_bytes=16), Renders()
    await cache.body("k", lambda: None, render)
    await cache.body("k", lambda: None, render)
    render.value = {"rows": list(range(100))}
    await cache.body("big", lambda: 1, render)
    await cache.body("big", lambda: 1, render)
    assert render.calls == 4


async def test_the_cache_keeps_at_most_its_entries() -> None:
    cache, render = ReportCache(entries=2), Renders()
    for key in ("a", "b", "c", "a"):
        await cache.body(key, lambda: 1, render)
    assert render.calls == 4  # "a" was evicted by "c"
    await cache.body("c", lambda: 1, render)
    assert render.calls == 4  # "c" was kept
