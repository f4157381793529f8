"""Governance reports, ready to publish (pure; rendering to text, CSV, JSON and a funnel-plot PNG).

- :func:`objection_rates`: objections per practice against the registered list
  size, with an abnormal-rate alert (Government response 7.15: "where there
  appears to be an abnormal number of objections ... explore with practices").
  Statistic: a funnel plot (Spiegelhalter, "Funnel plots for comparing
  institutional performance", Stat Med 2005), as used by NHS Digital, ONS and
  PHE to compare providers of different sizes. Each practice's proportion
  ``r = objectors / list_size`` is compared with the overall proportion ``p0``
  (all objectors / all registered patients) using binomial control limits by
  the normal approximation, ``p0 +/- z * sqrt(p0 (1 - p0) / n)``: 95% limits
  (z = 1.960) give a warning, 99.8% limits (z = 3.090) an alert. Practices
  below the lower 99.8% limit are flagged LOW too: an implausibly low count
  usually means objections are not being recorded or coded. The approximation
  is rough when ``n * p0 < 10``; such rows are still shown.
- :func:`breach_summary` / :func:`breach_incidents`: breaches by organisation
  and HSCIC IG SIRI severity, and the incident list itself (recommendation 6:
  every organisation publishes all such data breaches).
- :func:`disclosures`: what was disclosed, to whom and why (recommendation 19).

A patient "objects" when their latest objection event of any kind counted is a
REGISTER; events are ordered by ``(hlc, agent_id, event_id)`` as the state merge
does, and duplicates (same event id) count once.

Errors::

    ValidationError (consent_wire.errors)
    +-- ReportInputError     BAD_REPORT_INPUT
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

import orjson

from consent_wire.codes import BreachSeverity, ObjectionAction, ObjectionKind
from consent_wire.errors import ValidationError
from consent_wire.model import AccessRecord, BreachReport, Event, Objection

__all__ = [
    "Z_95",
    "Z_998",
    "BreachIncidentRow",
    "BreachIncidents",
    "BreachSummary",
    "BreachSummaryRow",
    "Cell",
    "DisclosureReport",
    "DisclosureRow",
    "ObjectionRateReport",
    "ObjectionRateRow",
    "RateFlag",
    "Report",
    "ReportInputError",
    "Table",
    "breach_incidents",
    "breach_summary",
    "disclosures",
    "funnel_plot_png",
    "objection_rates",
    "render_csv",
    "render_json",
    "render_text",
]

Z_95 = 1.960  # two-sided 95% standard normal quantile (funnel-plot warning limit)
Z_998 = 3.090  # two-sided 99.8% standard normal quantile (funnel-plot alert limit, Spiegelhalter 2005)

Cell: TypeAlias = str | int | float | bool | None


class ReportInputError(ValidationError):
    reason = "BAD_REPORT_INPUT"


class RateFlag(StrEnum):
    ALERT_HIGH = "ALERT_HIGH"  # above the upper 99.8% limit
    WARN_HIGH = "WARN_HIGH"  # above the upper 95% limit
    WITHIN = "WITHIN"
    LOW = "LOW"  # below the lower 99.8% limit


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


class Report(Protocol):
    def table(self) -> Table: ...


def _table(title: str, row_type: type[Any], rows: Iterable[Any]) -> Table:
    columns = tuple(f.name for f in fields(row_type))
    return Table(title, columns, tuple(tuple(_cell(v) for v in astuple(r)) for r in rows))


def _cell(value: object) -> Cell:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise TypeError(f"unsupported report cell {type(value).__name__}")


# --- (a) objection rates per practice -------------------------------------------------------------


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
        return _table(f"Objection rate per practice ({kinds})", ObjectionRateRow, self.rows)


def objection_rates(
    events: Iterable[Event],
    list_sizes: Mapping[str, int],
    *,
    kinds: Iterable[ObjectionKind] = tuple(ObjectionKind),
) -> ObjectionRateReport:
    """Objectors per practice (``event.site``) against ``list_sizes`` (registered patients per practice)."""
    counted = tuple(sorted(set(kinds), key=lambda k: k.value))
    objectors = _objectors_by_site(events, frozenset(counted))
    _check_sizes(objectors, list_sizes)
    total = sum(list_sizes.values())
    p0 = sum(objectors.values()) / total if total else 0.0
    rows = tuple(_rate_row(site, n, objectors.get(site, 0), p0) for site, n in sorted(list_sizes.items()))
    return ObjectionRateReport(counted, p0, rows)


def _objectors_by_site(events: Iterable[Event], kinds: frozenset[ObjectionKind]) -> dict[str, int]:
    latest: dict[tuple[str, ObjectionKind], Event] = {}
    for e in _unique(events):
        if isinstance(e.payload, Objection) and e.payload.kind in kinds and e.patient_key:
            key = (e.patient_key, e.payload.kind)
            if key not in latest or _order(e) > _order(latest[key]):
                latest[key] = e
    where: dict[str, Event] = {}  # patient -> latest active registration of any counted kind
    for (patient, _), e in latest.items():
        assert isinstance(e.payload, Objection)
        if e.payload.action is ObjectionAction.REGISTER and (
            patient not in where or _order(e) > _order(where[patient])
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


def funnel_plot_png(report: ObjectionRateReport, *, dpi: int = 100) -> bytes:
    """The funnel plot as PNG bytes. Needs matplotlib: ``pip install 'consent-broker[bench]'``."""
    try:
        import matplotlib  # optional extra, imported only when a chart is wanted

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "funnel_plot_png needs matplotlib, from the 'bench' extra: pip install 'consent-broker[bench]'"
        ) from exc
    p0, rows = report.overall_rate, report.rows
    top = max((r.list_size for r in rows), default=1)
    ns = [max(1, round(top * k / 200)) for k in range(1, 201)]
    fig, ax = plt.subplots(figsize=(8, 5))
    for z, style, label in ((Z_95, "--", "95% limits"), (Z_998, "-", "99.8% limits")):
        limits = [z * math.sqrt(p0 * (1 - p0) / n) for n in ns]
        ax.plot(ns, [min(1.0, p0 + d) for d in limits], style, color="grey", linewidth=1, label=label)
        ax.plot(ns, [max(0.0, p0 - d) for d in limits], style, color="grey", linewidth=1)
    ax.axhline(p0, color="black", linewidth=1, label=f"overall rate {p0:.1%}")
    colours = {RateFlag.ALERT_HIGH: "red", RateFlag.WARN_HIGH: "orange", RateFlag.LOW: "blue"}
    ax.scatter([r.list_size for r in rows], [r.rate for r in rows], c=[colours.get(r.flag, "green") for r in rows])
    for r in rows:
        if r.flag is RateFlag.ALERT_HIGH:
            ax.annotate(r.practice, (r.list_size, r.rate), textcoords="offset points", xytext=(6, 4))
    ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("registered list size")
    ax.set_ylabel("objection rate")
    ax.set_title("Objection rate per practice: funnel plot (95% and 99.8% limits)")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


# --- (b) breaches ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreachSummaryRow:
    organisation: str
    level_0: int
    level_1: int
    level_2: int  # reportable to the ICO and the Department
    total: int
    individuals_affected: int
    apologies_given: int


@dataclass(frozen=True, slots=True)
class BreachSummary:
    rows: tuple[BreachSummaryRow, ...]

    def table(self) -> Table:
        return _table("Data breaches by organisation and IG SIRI severity", BreachSummaryRow, self.rows)


@dataclass(frozen=True, slots=True)
class BreachIncidentRow:
    organisation: str
    date: str  # ISO date (UTC) recorded
    severity: BreachSeverity
    category: str
    explanation: str
    remedial_action: str
    apology_given: bool
    individuals_affected: int


@dataclass(frozen=True, slots=True)
class BreachIncidents:
    rows: tuple[BreachIncidentRow, ...]

    def table(self) -> Table:
        return _table("Data breaches (for publication)", BreachIncidentRow, self.rows)


def _breaches(events: Iterable[Event], from_ms: int | None, to_ms: int | None) -> list[tuple[Event, BreachReport]]:
    out = [
        (e, e.payload)
        for e in _unique(events)
        if isinstance(e.payload, BreachReport) and _within(e.recorded_ms, from_ms, to_ms)
    ]
    return sorted(out, key=lambda t: (t[1].organisation, t[0].recorded_ms, t[0].event_id))


def breach_summary(events: Iterable[Event], *, from_ms: int | None = None, to_ms: int | None = None) -> BreachSummary:
    """Breaches per data controller by severity, in ``[from_ms, to_ms)`` of recording time."""
    acc: dict[str, list[int]] = {}
    for _, b in _breaches(events, from_ms, to_ms):
        row = acc.setdefault(b.organisation, [0, 0, 0, 0, 0])
        row[list(BreachSeverity).index(b.severity)] += 1
        row[3] += b.individuals_affected
        row[4] += int(b.apology_given)
    rows = tuple(
        BreachSummaryRow(org, v[0], v[1], v[2], v[0] + v[1] + v[2], v[3], v[4]) for org, v in sorted(acc.items())
    )
    return BreachSummary(rows)


def breach_incidents(
    events: Iterable[Event], *, from_ms: int | None = None, to_ms: int | None = None
) -> BreachIncidents:
    """Every breach in the period, one row each, as the board publishes them (recommendation 6)."""
    rows = tuple(
        BreachIncidentRow(
            b.organisation,
            datetime.fromtimestamp(e.recorded_ms / 1000, tz=UTC).date().isoformat(),
            b.severity,
            b.category,
            b.explanation,
            b.remedial_action,
            b.apology_given,
            b.individuals_affected,
        )
        for e, b in _breaches(events, from_ms, to_ms)
    )
    return BreachIncidents(rows)


# --- (c) disclosures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisclosureRow:
    discloser: str
    recipient: str
    purpose: str
    disclosures: int
    patients: int  # distinct patients
    data_classes: str  # ";"-joined, sorted
    legal_bases: str  # ";"-joined, sorted; "NONE" for a disclosure with no basis recorded


@dataclass(frozen=True, slots=True)
class DisclosureReport:
    rows: tuple[DisclosureRow, ...]

    def table(self) -> Table:
        return _table("Disclosures by recipient and purpose", DisclosureRow, self.rows)


def disclosures(events: Iterable[Event], *, from_ms: int | None = None, to_ms: int | None = None) -> DisclosureReport:
    """Access records with ``disclosed_to`` grouped by (discloser, recipient, purpose) (recommendation 19)."""
    groups: dict[tuple[str, str, str], tuple[list[int], set[str], set[str], set[str]]] = {}
    for e in _unique(events):
        p = e.payload
        if not isinstance(p, AccessRecord) or not p.disclosed_to or not _within(e.recorded_ms, from_ms, to_ms):
            continue
        count, patients, classes, bases = groups.setdefault(
            (p.organisation, p.disclosed_to, p.purpose.value), ([0], set(), set(), set())
        )
        count[0] += 1
        patients.add(e.patient_key)
        classes.update(c.value for c in p.data_classes)
        bases.add("NONE" if p.legal_basis is None else p.legal_basis.value)
    rows = tuple(
        DisclosureRow(d, r, pu, c[0], len(pa), ";".join(sorted(cl)), ";".join(sorted(b)))
        for (d, r, pu), (c, pa, cl, b) in sorted(groups.items())
    )
    return DisclosureReport(rows)


# --- shared helpers and renderers -----------------------------------------------------------------


def _unique(events: Iterable[Event]) -> list[Event]:
    return list({e.event_id: e for e in events}.values())


def _order(e: Event) -> tuple[int, str, str]:
    return (e.hlc, e.agent_id, e.event_id)


def _within(ms: int, from_ms: int | None, to_ms: int | None) -> bool:
    return (from_ms is None or ms >= from_ms) and (to_ms is None or ms < to_ms)


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_text(report: Report) -> str:
    """A plain-text table for a terminal: title, header, rule, rows (numbers right-aligned)."""
    t = report.table()
    cells = [[_text(v) for v in row] for row in t.rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(t.columns)]
    numeric = [bool(t.rows) and all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in t.rows)
               for i in range(len(t.columns))]  # fmt: skip

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [t.title, line(list(t.columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out) + "\n"


def render_csv(report: Report) -> str:
    """RFC 4180 CSV with a header row; floats in full precision, booleans as true/false."""
    t = report.table()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(t.columns)
    for row in t.rows:
        writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row])
    return buf.getvalue()


def render_json(report: Report) -> bytes:
    """``{"title": ..., "columns": [...], "rows": [{column: value}, ...]}`` as UTF-8 JSON."""
    t = report.table()
    rows = [dict(zip(t.columns, row, strict=True)) for row in t.rows]
    return orjson.dumps({"title": t.title, "columns": list(t.columns), "rows": rows})
