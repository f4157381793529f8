"""What the stage reads of a producer's metadata client, for the unit tests' stand-in producers."""

from __future__ import annotations

from typing import Any


class _Cluster:
    def __init__(self, known: bool) -> None:
        self.known = known

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0} if self.known else None


class MetadataClient:
    """Every topic known (``known``), or none until ``set_topics`` is asked (it records each request)."""

    def __init__(self, known: bool = True) -> None:
        self.cluster = _Cluster(known)
        self._topics: set[str] = set()
        self.requests: list[list[str]] = []

    async def set_topics(self, topics: list[str]) -> Any:
        self.requests.append(list(topics))
        self._topics = set(topics)
        self.cluster.known = True
        return True
