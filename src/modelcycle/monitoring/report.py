"""The monitoring page: traffic, drift, prediction drift and live performance over time (inline SVG, no scripts)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelcycle.data.report import COLORS, _page, _table, bars

if TYPE_CHECKING:
    from modelcycle.monitoring.monitor import MonitorReport

__all__ = ["lines", "monitor_html"]


def _e(value: Any) -> str:
    return html.escape(str(value))


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], width: int = 520, height: int = 170,
          threshold: float | None = None, lo: float | None = None, hi: float | None = None) -> str:
    """Lines over time as inline SVG; gaps (None, NaN) break a line; an optional dashed threshold."""
    values = [v for vs in series.values() for v in vs if v is not None and v == v]
    if not labels or not values:
        return '<p class="muted">no data yet</p>'
    lo = min(values + ([threshold] if threshold is not None else [])) if lo is None else lo
    hi = max(values + ([threshold] if threshold is not None else [])) if hi is None else hi
    if hi <= lo:
        hi = lo + 1.0
    left, pad, base = 40, 8, height - 22
    n = len(labels)

    def x(i: int) -> float:
        return left + (width - left - pad) * (i / max(1, n - 1))

    def y(v: float) -> float:
        return base - (base - pad) * (v - lo) / (hi - lo)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<line x1="{left}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#999"/>',
             f'<text x="2" y="{pad + 8}" font-size="9" fill="#555">{hi:.3g}</text>',
             f'<text x="2" y="{base}" font-size="9" fill="#555">{lo:.3g}</text>']
    if threshold is not None:
        parts.append(f'<line x1="{left}" y1="{y(threshold):.1f}" x2="{width - pad}" y2="{y(threshold):.1f}" stroke="#c0392b" '
                     f'stroke-dasharray="4 3"><title>threshold {threshold:.3g}</title></line>')
    for j, (name, vs) in enumerate(series.items()):
        color = COLORS[j % len(COLORS)]
        segment: list[str] = []
        for i, v in enumerate(vs):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if len(segment) > 1:
                    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(segment)}"/>')
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"><title>{_e(name)} {_e(labels[i])}: '
                         f'{v:.4g}</title></circle>')
        if len(segment) > 1:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(segment)}"/>')
    step = max(1, n // 6)
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i) - 14:.1f}" y="{height - 6}" font-size="9" fill="#555">{_e(labels[i][-8:])}</text>')
    parts.append("</svg>")
    legend = '<div class="legend muted">' + "".join(
        f'<span style="color:{COLORS[i % len(COLORS)]}">■</span>{_e(n)} ' for i, n in enumerate(series)) + "</div>"
    return "".join(parts) + legend


def monitor_html(report: MonitorReport, title: str | None = None) -> str:
    ws = report.windows
    labels = [w.label for w in ws]
    drift = [w.drift["share"] if w.drift else None for w in ws]
    pdrift = [w.prediction_drift["statistic"] if w.prediction_drift else None for w in ws]
    metric_names = sorted({k for w in ws for k in w.metrics} & {"roc_auc", "accuracy", "f1", "r2", "rmse", "mae"})
    perf = {m: [w.metrics.get(m) if w.labelled else None for w in ws] for m in metric_names}
    agreement = [(w.summary.get("shadow") or {}).get("agreement") for w in ws]
    versions = sorted({str(w.version) for w in ws if w.version is not None})
    cards = [
        f'<div class="card"><h2>Traffic</h2>{bars(labels, {"rows": [float(w.rows) for w in ws]}, width=520)}'
        f'<div class="muted">versions served: {_e(", ".join(versions) or "none")}</div></div>',
        f'<div class="card"><h2>Input drift (share of columns drifted)</h2>{lines(labels, {"drift share": drift}, lo=0.0, hi=1.0)}</div>',
        f'<div class="card"><h2>Prediction drift</h2>{lines(labels, {"statistic": pdrift}, lo=0.0)}</div>',
        f'<div class="card"><h2>Live performance</h2>{lines(labels, perf) if perf else "<p class=muted>no labels joined yet</p>"}</div>',
    ]
    if any(a is not None for a in agreement):
        cards.append(f'<div class="card"><h2>Champion and challenger agreement</h2>{lines(labels, {"agreement": agreement}, lo=0.0, hi=1.0)}</div>')
    rows = []
    for w in ws:
        share = "—" if not w.drift else f"{w.drift['share']:.0%}"
        cls = "bad" if w.drift and w.drift["dataset_drift"] else "ok"
        pstat = "—" if not w.prediction_drift else f"{w.prediction_drift['statistic']:.3g}"
        drifted = ", ".join((w.drift or {}).get("drifted_columns", [])[:5])
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(w.metrics.items()) if k in metric_names)
        rows.append(f"<tr><td>{_e(w.label)}</td><td>{w.rows:,}</td><td>{_e(w.version)}</td><td>{_e((w.quality or {}).get('errors', '—'))}</td>"
                    f"<td class={cls}>{share}</td><td>{_e(drifted)}</td><td>{pstat}</td><td>{w.labelled:,}</td><td>{_e(shown)}</td></tr>")
    table = _table(["window", "rows", "version", "quality errors", "drift", "drifted columns", "prediction drift", "labelled",
                    "metrics"], "".join(rows))
    alerts = "".join(f"<li><b>{_e(a.get('rule'))}</b> {_e(a.get('state'))}: {_e(a.get('message'))}</li>" for a in report.alerts)
    body = (f"<p>{len(ws)} windows of {report.window_seconds:,} s; {sum(w.rows for w in ws):,} predictions.</p>"
            f"<div class=grid>{''.join(cards)}</div>{table}" + (f"<h2>Alerts</h2><ul>{alerts}</ul>" if alerts else ""))
    return _page(title or f"Monitoring: {report.model}", body)
