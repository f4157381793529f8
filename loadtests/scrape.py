"""Read the core's own Prometheus counters (broker/stage.py) to split each stage's wall time."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

__all__ = ["StageCounters", "parse_stage_counters", "scrape"]

_SAMPLE = re.compile(r'^(broker_stage_[a-z_]+)\{stage="(\w+)"[^}]*\}\s+([0-9.eE+-]+)$')
_WANTED = {
    "broker_stage_batch_seconds_sum": "batch_seconds",
    "broker_stage_batch_seconds_count": "batches",
    "broker_stage_records_in_total": "records_in",
    "broker_stage_transaction_aborts_total": "aborts",
}


@dataclass(frozen=True, slots=True)
class StageCounters:
    batch_seconds: float = 0.0  # time inside process + transaction, summed over partition batches
    batches: float = 0.0
    records_in: float = 0.0
    aborts: float = 0.0

    def plus(self, other: StageCounters) -> StageCounters:
        return StageCounters(self.batch_seconds + other.batch_seconds, self.batches + other.batches,
                             self.records_in + other.records_in, self.aborts + other.aborts)  # fmt: skip

    def minus(self, other: StageCounters) -> StageCounters:
        return StageCounters(self.batch_seconds - other.batch_seconds, self.batches - other.batches,
                             self.records_in - other.records_in, self.aborts - other.aborts)  # fmt: skip


def parse_stage_counters(text: str) -> dict[str, StageCounters]:
    """Per stage, the sums of the counters above from a Prometheus text exposition."""
    values: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None or match.group(1) not in _WANTED:
            continue
        field = _WANTED[match.group(1)]
        stage = values.setdefault(match.group(2), {})
        stage[field] = stage.get(field, 0.0) + float(match.group(3))
    return {stage: StageCounters(**fields) for stage, fields in values.items()}


async def scrape(port: int) -> dict[str, StageCounters]:
    """Counters from 127.0.0.1:port/metrics; empty if the endpoint does not answer."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            return parse_stage_counters(await resp.text())
    except (aiohttp.ClientError, TimeoutError):
        return {}
