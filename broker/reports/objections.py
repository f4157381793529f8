"""Objection rates per practice with abnormal-rate alerts (pure).

Objections per practice against the registered list size, with an abnormal-rate alert
(Government response 7.15: "where there appears to be an abnormal number of objections ...
explore with practices"). Statistic: a funnel plot (Spiegelhalter, "Funnel plots for comparing
institutional performance", Stat Med 2005), as used by NHS Digital, ONS and PHE to compare
providers of different sizes. Each practice's proportion ``r = objectors / list_size`` is compared
with the overall proportion ``p0`` (all objectors / all registered patients) using binomial
control limits by the normal approximation, ``p0 +/- z * sqrt(p0 (1 - p0) / n)``: 95% limits
(z = 1.960) give a warning, 99.8% limits (z = 3.090) an alert. Practices below the lower 99.8%
limit are flagged LOW too: an implausibly low count usually means objections are not being
recorded or coded. The approximation is rough when ``n * p0 < 10``; such rows are still shown.

A patient "objects" when their latest objection event of any kind counted is a REGISTER; events
are ordered by ``(hlc, agent_id, event_id)`` as the state merge does, and duplicates (same event
id) count once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from broker.reports._events import merge_order, unique
from broker.reports.table import ReportInputError, Table, table_of
from consent_wire.codes import ObjectionAction, ObjectionKind
from consent_wire.model import Event, Objection

__all__ = ["Z_95", "Z_998", "ObjectionRateReport", "ObjectionRateRow", "RateFlag", "objection_rates", "rates_of"]

Z_95 = 1.960  # two-sided 95% standard normal quantile (funnel-plot warning limit)
Z_998 = 3.090  # two-sided 99.8% standard normal quantile (funnel-plot alert limit, Spiegelhalter 2005)


class RateFlag(StrEnum):
    ALERT_HIGH = "ALERT_HIGH"  # above the upper 99.8% limit
    WARN_HIGH = "WARN_HIGH"  # above the upper 95% limit
    WITHIN = "WITHIN"
    LOW = "LOW"  # below the lower 99.8% limit


@dataclass(frozen=True, slots=True)
class ObjectionRateRow:
    practice: str
    list_size: int
    objectors: int
    rate: float
    overall_rate: float
    lower_998: float
    upper_95: float
    upper_998: float
    z_score: float
    flag: RateFlag


@dataclass(frozen=True, slots=True)
class ObjectionRateReport:
    kinds: tuple[ObjectionKind, ...]
    overall_rate: float
    rows: tuple[ObjectionRateRow, ...]  # by practice code

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(r.practice for r in self.rows if r.flag is RateFlag.ALERT_HIGH)

    def table(self) -> Table:
        kinds = "+".join(k.value for k in self.kinds)
        return table_of(f"Objection rate per practice ({kinds})", ObjectionRateRow, self.rows)


def objection_rates(
    events: Iterable[Event],
    list_sizes: Mapping[str, int],
    *,
    kinds: Iterable[ObjectionKind] = tuple(ObjectionKind),
) -> ObjectionRateReport:
    """Objectors per practice (``event.site``) against ``list_sizes`` (registered patients per practice)."""
    counted = tuple(sorted(set(kinds), key=lambda k: k.value))
    return rates_of(_objectors_by_site(events, frozenset(counted)), list_sizes, counted)


def rates_of(
    objectors: Mapping[str, int], list_sizes: Mapping[str, int], counted: tuple[ObjectionKind, ...]
) -> ObjectionRateReport:
    """The report from objectors per practice (``counted``: the objection kinds they were counted over)."""
    _check_sizes(objectors, list_sizes)
    total = sum(list_sizes.values())
    p0 = sum(objectors.values()) / total if total else 0.0
    rows = tuple(_rate_row(site, n, objectors.get(site, 0), p0) for site, n in sorted(list_sizes.items()))
    return ObjectionRateReport(counted, p0, rows)


def _objectors_by_site(events: Iterable[Event], kinds: frozenset[ObjectionKind]) -> dict[str, int]:
    latest: dict[tuple[str, ObjectionKind], Event] = {}
    for e in unique(events):
        if isinstance(e.payload, Objection) and e.payload.kind in kinds and e.patient_key:
            key = (e.patient_key, e.payload.kind)
            if key not in latest or merge_order(e) > merge_order(latest[key]):
                latest[key] = e
    where: dict[str, Event] = {}  # patient -> latest active registration of any counted kind
    for (patient, _), e in latest.items():
        assert isinstance(e.payload, Objection)
        if e.payload.action is ObjectionAction.REGISTER and (
            patient not in where or merge_order(e) > merge_order(where[patient])
        ):
            where[patient] = e
    counts: dict[str, int] = defaultdict(int)
    for e in where.values():
        counts[e.site] += 1
    return dict(counts)


def _check_sizes(objectors: Mapping[str, int], list_sizes: Mapping[str, int]) -> None:
    for site, n in list_sizes.items():
        if n <= 0:
            raise ReportInputError(f"practice {site} has list size {n}; it must be positive")
        if objectors.get(site, 0) > n:
            raise ReportInputError(f"practice {site} has {objectors[site]} objectors but list size {n}")
    unknown = sorted(set(objectors) - set(list_sizes))
    if unknown:
        raise ReportInputError(f"no list size for practices {', '.join(unknown)}; add them to list_sizes")


def _rate_row(site: str, n: int, objectors: int, p0: float) -> ObjectionRateRow:
    rate = objectors / n
    se = math.sqrt(p0 * (1.0 - p0) / n)
    lower, upper95, upper = max(0.0, p0 - Z_998 * se), min(1.0, p0 + Z_95 * se), min(1.0, p0 + Z_998 * se)
    z = (rate - p0) / se if se > 0 else 0.0
    if rate > upper:
        flag = RateFlag.ALERT_HIGH
    elif rate > upper95:
        flag = RateFlag.WARN_HIGH
    elif rate < lower:
        flag = RateFlag.LOW
    else:
        flag = RateFlag.WITHIN
    return ObjectionRateRow(site, n, objectors, rate, p0, lower, upper95, upper, z, flag)
