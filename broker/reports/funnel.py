"""The objection-rate funnel plot as a PNG (needs matplotlib, an optional extra)."""

from __future__ import annotations

import io
import math

from broker.reports.objections import Z_95, Z_998, ObjectionRateReport, RateFlag

__all__ = ["funnel_plot_png"]


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
