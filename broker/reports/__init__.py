"""Governance reports, ready to publish.

- :mod:`~broker.reports.objections`: objection rates per practice with funnel-plot alerts
  (Government response 7.15), and :mod:`~broker.reports.funnel` its PNG chart (matplotlib extra);
- :mod:`~broker.reports.breaches`: breaches by organisation and severity, and the incident list
  (recommendation 6);
- :mod:`~broker.reports.disclosures`: what was disclosed, to whom and why (recommendation 19);
- :mod:`~broker.reports.aggregates`: the streaming aggregates the ``reports`` stage keeps, and the reports
  read back from them (issue 16);
- :mod:`~broker.reports.table`: the :class:`Table` every report renders to, and the error;
- :mod:`~broker.reports.render`: text, CSV and JSON renderings; :mod:`~broker.reports.files`
  writes the CSV and JSON files (the one I/O module here).

All but ``files`` are pure; matplotlib is imported only when a chart is drawn.
"""

from broker.reports.breaches import (
    BreachIncidentRow,
    BreachIncidents,
    BreachSummary,
    BreachSummaryRow,
    breach_incidents,
    breach_summary,
    incidents_of,
    summary_of,
)
from broker.reports.disclosures import DisclosureReport, DisclosureRow, disclosures
from broker.reports.files import write_report
from broker.reports.funnel import funnel_plot_png
from broker.reports.objections import (
    Z_95,
    Z_998,
    ObjectionRateReport,
    ObjectionRateRow,
    RateFlag,
    objection_rates,
    rates_of,
)
from broker.reports.render import render_csv, render_json, render_text, report_object
from broker.reports.table import Cell, Report, ReportInputError, Table

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
    "incidents_of",
    "objection_rates",
    "rates_of",
    "render_csv",
    "render_json",
    "render_text",
    "report_object",
    "summary_of",
    "write_report",
]
