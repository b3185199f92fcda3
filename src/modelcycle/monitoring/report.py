"""The monitoring page: traffic, drift, prediction drift and live performance over time (inline SVG, no scripts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelcycle._html import bars, escape, lines, page, table

if TYPE_CHECKING:
    from modelcycle.monitoring.monitor import MonitorReport

__all__ = ["monitor_html"]


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
        f'<div class="muted">versions served: {escape(", ".join(versions) or "none")}</div></div>',
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
        errors = escape((w.quality or {}).get("errors", "—"))
        rows.append(f"<tr><td>{escape(w.label)}</td><td>{w.rows:,}</td><td>{escape(w.version)}</td><td>{errors}</td>"
                    f"<td class={cls}>{share}</td><td>{escape(drifted)}</td><td>{pstat}</td><td>{w.labelled:,}</td><td>{escape(shown)}</td></tr>")
    windows = table(["window", "rows", "version", "quality errors", "drift", "drifted columns", "prediction drift", "labelled",
                    "metrics"], "".join(rows))
    alerts = "".join(f"<li><b>{escape(a.get('rule'))}</b> {escape(a.get('state'))}: {escape(a.get('message'))}</li>" for a in report.alerts)
    body = (f"<p>{len(ws)} windows of {report.window_seconds:,} s; {sum(w.rows for w in ws):,} predictions.</p>"
            f"<div class=grid>{''.join(cards)}</div>{windows}" + (f"<h2>Alerts</h2><ul>{alerts}</ul>" if alerts else ""))
    return page(title or f"Monitoring: {report.model}", body)
