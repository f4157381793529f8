"""Governance reports: objection-rate funnel alerts, breach publication, disclosures, renderers."""

from __future__ import annotations

import csv
import io
import itertools
import math

import orjson
import pytest

from broker.reports import (
    Z_95,
    Z_998,
    BreachIncidentRow,
    BreachSummaryRow,
    DisclosureRow,
    RateFlag,
    ReportInputError,
    breach_incidents,
    breach_summary,
    disclosures,
    objection_rates,
    render_csv,
    render_json,
    render_text,
)
from consent_wire.codes import (
    BreachSeverity,
    DataClass,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
)
from consent_wire.model import AccessRecord, BreachReport, Event, Objection, Payload

T0 = 1_760_000_000_000  # 2025-10-09T09:46:40Z
_ids = itertools.count(1)

# practice -> (registered list size, objectors). D is far above the rest, G mildly above, F far below.
PRACTICES = {
    "A": (10_000, 200),
    "B": (8_000, 160),
    "C": (5_000, 100),
    "D": (2_000, 130),
    "E": (12_000, 240),
    "F": (4_000, 20),
    "G": (3_000, 82),
}


def ev(payload: Payload, *, site: str = "A81001", patient: str = "", ms: int = T0) -> Event:
    n = next(_ids)
    return Event(f"{n:032x}", f"agent-{site}", site, n, bytes(32), ms << 16, ms, patient, payload)


def objection_events() -> list[Event]:
    out: list[Event] = []
    for site, (_, objectors) in PRACTICES.items():
        for i in range(objectors):
            out.append(ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER), site=site, patient=f"{site}{i}"))
        reg = ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER), site=site, patient=f"{site}-gone")
        out += [reg, reg]  # a duplicate delivery counts once ...
        gone = Objection(ObjectionKind.NDOP, ObjectionAction.WITHDRAW)
        out.append(ev(gone, site=site, patient=f"{site}-gone", ms=T0 + 1))  # ... and a withdrawal not at all
        both = Objection(ObjectionKind.TYPE1, ObjectionAction.REGISTER)
        out.append(ev(both, site=site, patient=f"{site}0", ms=T0 + 2))  # two kinds, one objector
    return out


def sizes() -> dict[str, int]:
    return {site: n for site, (n, _) in PRACTICES.items()}


def test_objection_rates_flag_abnormal_practices_on_funnel_limits() -> None:
    report = objection_rates(objection_events(), sizes())
    p0 = sum(o for _, o in PRACTICES.values()) / sum(n for n, _ in PRACTICES.values())
    assert report.overall_rate == pytest.approx(p0)
    flags = {r.practice: r.flag for r in report.rows}
    assert flags == {
        "A": RateFlag.WITHIN,
        "B": RateFlag.WITHIN,
        "C": RateFlag.WITHIN,
        "D": RateFlag.ALERT_HIGH,
        "E": RateFlag.WITHIN,
        "F": RateFlag.LOW,
        "G": RateFlag.WARN_HIGH,
    }
    assert report.alerts == ("D",)
    d = next(r for r in report.rows if r.practice == "D")
    se = math.sqrt(p0 * (1 - p0) / 2000)
    assert (d.objectors, d.rate) == (130, 130 / 2000)
    assert d.upper_998 == pytest.approx(p0 + Z_998 * se)
    assert d.upper_95 == pytest.approx(p0 + Z_95 * se)
    assert d.z_score == pytest.approx((130 / 2000 - p0) / se)


def test_objection_rates_can_count_one_kind_only() -> None:
    report = objection_rates(objection_events(), sizes(), kinds=[ObjectionKind.TYPE1])
    assert {r.practice: r.objectors for r in report.rows} == dict.fromkeys(PRACTICES, 1)
    assert report.kinds == (ObjectionKind.TYPE1,)


def test_practice_with_no_objections_is_listed_with_zero() -> None:
    report = objection_rates(objection_events(), {**sizes(), "Z": 1500})
    z = next(r for r in report.rows if r.practice == "Z")
    assert (z.objectors, z.rate) == (0, 0.0)


def test_objectors_at_a_practice_without_list_size_are_an_input_error() -> None:
    with pytest.raises(ReportInputError, match="no list size for practices A") as exc:
        objection_rates(objection_events(), {k: v for k, v in sizes().items() if k != "A"})
    assert exc.value.reason == "BAD_REPORT_INPUT"


def test_more_objectors_than_patients_is_an_input_error() -> None:
    with pytest.raises(ReportInputError, match="130 objectors but list size 100"):
        objection_rates(objection_events(), {**sizes(), "D": 100})


def breach(org: str, sev: BreachSeverity, people: int, apology: bool, ms: int = T0) -> Event:
    report = BreachReport(org, sev, "DISCLOSED_IN_ERROR", "letter sent to wrong address", "retrained", apology, people)
    return ev(report, site=org, ms=ms)


def breach_events() -> list[Event]:
    one = breach("RX1", BreachSeverity.LEVEL_2, 40, True)
    return [
        one,
        one,  # duplicate delivery
        breach("RX1", BreachSeverity.LEVEL_0, 0, False, T0 + 5),
        breach("A81001", BreachSeverity.LEVEL_1, 1, True),
        breach("A81001", BreachSeverity.LEVEL_1, 2, False, T0 - 400 * 86_400_000),  # last year
    ]


def test_breach_summary_by_organisation_and_severity() -> None:
    summary = breach_summary(breach_events(), from_ms=T0 - 30 * 86_400_000)
    assert summary.rows == (
        BreachSummaryRow("A81001", 0, 1, 0, 1, 1, 1),
        BreachSummaryRow("RX1", 1, 0, 1, 2, 40, 1),
    )


def test_breach_incidents_are_listed_for_publication() -> None:
    rows = breach_incidents(breach_events(), from_ms=T0).rows
    assert [(r.organisation, r.severity, r.individuals_affected) for r in rows] == [
        ("A81001", BreachSeverity.LEVEL_1, 1),
        ("RX1", BreachSeverity.LEVEL_2, 40),
        ("RX1", BreachSeverity.LEVEL_0, 0),
    ]
    assert rows[1] == BreachIncidentRow(
        "RX1", "2025-10-09", BreachSeverity.LEVEL_2, "DISCLOSED_IN_ERROR",
        "letter sent to wrong address", "retrained", True, 40,
    )  # fmt: skip


def access(org: str, to: str, purpose: PurposeOfUse, patient: str, basis: LegalBasis | None) -> Event:
    rec = AccessRecord("staff-1", org, "ANALYST", True, Relationship.NONE, purpose, (DataClass.GENERAL,), basis, to)
    return ev(rec, site=org, patient=patient)


def test_disclosures_by_recipient_and_purpose() -> None:
    events = [
        access("A81001", "RESLAB1", PurposeOfUse.HRESCH, "p1", LegalBasis.S251),
        access("A81001", "RESLAB1", PurposeOfUse.HRESCH, "p1", LegalBasis.CONSENT),
        access("A81001", "RESLAB1", PurposeOfUse.HRESCH, "p2", LegalBasis.S251),
        access("A81001", "UKHSA", PurposeOfUse.PUBHLTH, "p3", LegalBasis.STATUTORY_MANDATE),
        access("A81001", "", PurposeOfUse.TREAT, "p4", None),  # a view, not a disclosure
    ]
    assert disclosures(events).rows == (
        DisclosureRow("A81001", "RESLAB1", "HRESCH", 3, 2, "GENERAL", "CONSENT;S251"),
        DisclosureRow("A81001", "UKHSA", "PUBHLTH", 1, 1, "GENERAL", "STATUTORY_MANDATE"),
    )


def test_render_text_aligns_columns_under_a_title() -> None:
    text = render_text(breach_summary(breach_events(), from_ms=T0 - 30 * 86_400_000))
    lines = text.splitlines()
    assert lines[0] == "Data breaches by organisation and IG SIRI severity"
    assert lines[1].split() == [
        "organisation", "level_0", "level_1", "level_2", "total", "individuals_affected", "apologies_given",
    ]  # fmt: skip
    assert lines[3].split() == ["A81001", "0", "1", "0", "1", "1", "1"]
    assert len({len(line) for line in lines[2:]}) == 1  # every row as wide as the rule


def test_render_csv_round_trips_through_a_csv_reader() -> None:
    report = objection_rates(objection_events(), sizes())
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [r["practice"] for r in rows] == list(PRACTICES)
    d = rows[3]
    assert (d["objectors"], d["flag"], float(d["rate"])) == ("130", "ALERT_HIGH", 0.065)


def test_render_json_has_one_object_per_row() -> None:
    report = breach_incidents(breach_events(), from_ms=T0)
    doc = orjson.loads(render_json(report))
    assert doc["title"] == "Data breaches (for publication)"
    assert doc["rows"][1]["severity"] == "LEVEL_2"
    assert doc["rows"][1]["apology_given"] is True
    assert len(doc["rows"]) == 3


def test_the_api_answer_object_is_exactly_what_render_json_encodes() -> None:
    """The report endpoints answer ``report_object`` directly (no encode, decode and re-encode): same bytes."""
    from broker.reports import report_object

    report = breach_incidents(breach_events(), from_ms=T0)
    assert report_object(report) == orjson.loads(render_json(report))
    assert orjson.dumps(report_object(report)) == render_json(report)
