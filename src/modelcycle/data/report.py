"""Self-contained HTML pages for profiles, validation and drift: inline SVG charts, no scripts."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelcycle.data.drift import DriftReport
    from modelcycle.data.profile import ColumnProfile, Profile
    from modelcycle.data.validate import ValidationReport

__all__ = ["drift_html", "profile_html", "validation_html", "write"]

COLORS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .3rem}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}th{background:#f5f5f5}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}
.card{border:1px solid #e3e3e3;border-radius:8px;padding:.8rem;overflow-x:auto}.bad{color:#c0392b;font-weight:600}.ok{color:#2e7d32}
.warn{color:#b26a00;font-weight:600}.muted{color:#777;font-size:.85rem}.legend span{margin-right:1rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else _e(value)


def bars(labels: Sequence[str], series: dict[str, Sequence[float]], width: int = 320, height: int = 150) -> str:
    """Grouped vertical bars as inline SVG: one group per label, one bar per series."""
    n = len(labels)
    if not n or not series:
        return ""
    top = max((v for values in series.values() for v in values if v == v), default=0.0) or 1.0
    pad, base = 4, height - 22
    group = (width - 2 * pad) / n
    bar = max(1.0, group * 0.8 / len(series))
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, label in enumerate(labels):
        x0 = pad + i * group + group * 0.1
        for j, (name, values) in enumerate(series.items()):
            v = values[i] if values[i] == values[i] else 0.0
            h = (base - 4) * v / top
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[j % len(COLORS)]}"><title>{_e(name)} {_e(label)}: {v:.4g}</title></rect>'
            )
        if n <= 12 or i % max(1, n // 8) == 0:
            parts.append(f'<text x="{x0:.1f}" y="{height - 6}" font-size="9" fill="#555">{_e(str(label)[:10])}</text>')
    parts.append(f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#999"/></svg>')
    return "".join(parts)


def _legend(names: Sequence[str]) -> str:
    return '<div class="legend muted">' + "".join(
        f'<span style="color:{COLORS[i % len(COLORS)]}">■</span>{_e(n)} ' for i, n in enumerate(names)) + "</div>"


def _distribution(cols: Sequence[ColumnProfile], bins: int = 20) -> tuple[list[str], list[list[float]]]:
    """Shares per bin (numbers, on edges from the first column's 1%..99% range) or per category."""
    first = cols[0]
    if first.base in ("numeric", "integer", "datetime") and first.kind != "boolean":
        lo, hi = first.quantiles([0.01])[0], first.quantiles([0.99])[0]
        if not (lo == lo and hi == hi) or hi <= lo:
            return [], []
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
        shares = []
        for c in cols:
            cdf = c.cdf(edges)
            shares.append([max(0.0, cdf[i + 1] - cdf[i]) for i in range(bins)])
        return [f"{e:.3g}" for e in edges[:-1]], shares
    keys: list[Any] = [k for k, _ in first.frequent_values(10)]
    for c in cols[1:]:  # the current data's top values too, so a new category shows
        keys.extend(k for k, _ in c.frequent_values(5) if k not in keys)
    shares = []
    for c in cols:
        counts = dict(c.frequent_values(1 << 12))
        total = sum(counts.values()) or 1
        shares.append([counts.get(k, 0) / total for k in keys])
    return [str(k) for k in keys], shares


def _table(headers: Sequence[str], rows: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{body}</body></html>")


def write(text: str, path: str | os.PathLike[str] | None) -> str:
    """Write a page to ``path`` (when given) and return it."""
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def profile_html(p: Profile, title: str = "Data profile") -> str:
    cards = []
    for name, c in p.columns.items():
        labels, shares = _distribution([c])
        stats = (f"{_e(c.kind)} · {c.count:,} values · {c.missing:,} missing · {c.distinct:,} distinct"
                 + (f" · mean {_num(c.mean)} · std {_num(c.std)} · [{_num(c.min)}, {_num(c.max)}]"
                    if c.base in ("numeric", "integer") else ""))
        cards.append(f'<div class="card"><h2>{_e(name)}</h2><div class="muted">{stats}</div>'
                     f'{bars(labels, {"share": shares[0]}) if shares else ""}</div>')
    return _page(title, f"<p>{p.rows:,} rows, {len(p.columns)} columns.</p><div class=grid>{''.join(cards)}</div>")


def validation_html(report: ValidationReport, title: str = "Data validation") -> str:
    verdict = '<span class="ok">passed</span>' if report.passed else '<span class="bad">failed</span>'
    rows = "".join(
        f"<tr><td>{_e(a.column)}</td><td>{_e(a.check)}</td>"
        f"<td class={'bad' if a.severity == 'error' else 'warn'}>{_e(a.severity)}</td><td>{_e(a.expected)}</td>"
        f"<td>{_e(a.observed)}</td><td>{_e(', '.join(repr(x) for x in a.examples[:5]))}</td></tr>"
        for a in report.anomalies
    )
    cards = []
    for column in dict.fromkeys(a.column for a in report.anomalies if a.rows):
        found = [a for a in report.anomalies if a.column == column and a.rows]
        labels = ["valid rows", *[a.check for a in found]]
        offending = sum(a.rows for a in found)
        values = [max(0, report.rows - offending), *[a.rows for a in found]]
        cards.append(f'<div class="card"><h2>{_e(column)}</h2>{bars(labels, {"rows": values})}</div>')
    headers = ("column", "check", "severity", "expected", "observed", "examples")
    table = _table(headers, rows) if rows else "<p class=ok>No anomaly.</p>"
    body = (f"<p>{report.rows:,} rows: {verdict} — {len(report.errors)} error(s), {len(report.warnings)} warning(s).</p>"
            f"{table}<div class=grid>{''.join(cards)}</div>")
    return _page(title, body)


def drift_html(report: DriftReport, title: str = "Data drift") -> str:
    verdict = '<span class="bad">dataset drift</span>' if report.dataset_drift else '<span class="ok">no dataset drift</span>'
    rows = "".join(
        f"<tr><td>{_e(c.column)}</td><td>{_e(c.kind)}</td><td>{_e(c.method)}</td><td>{_num(c.statistic)}</td>"
        f"<td>{_num(c.threshold)}</td><td class={'bad' if c.drifted else 'ok'}>{'drifted' if c.drifted else 'ok'}</td>"
        f"<td>{_e(', '.join(map(str, c.unseen[:5])))}</td><td>{c.missing_reference:.1%} → {c.missing_current:.1%}</td></tr>"
        for c in report.columns.values()
    )
    cards = []
    if report.reference is not None and report.current is not None:
        ordered = sorted(report.columns.values(), key=lambda c: (not c.drifted, c.column))
        for c in ordered:
            pair = [report.reference.columns[c.column], report.current.columns[c.column]]
            labels, shares = _distribution(pair)
            if shares:
                cls = "bad" if c.drifted else "ok"
                cards.append(f'<div class="card"><h2>{_e(c.column)} <span class="{cls}">'
                             f'{"drifted" if c.drifted else "ok"}</span></h2>'
                             f'<div class="muted">{_e(c.method)} {_num(c.statistic)} (threshold {_num(c.threshold)})</div>'
                             f'{bars(labels, {"reference": shares[0], "current": shares[1]})}</div>')
    body = (f"<p>{report.reference_rows:,} reference rows, {report.current_rows:,} current rows: {verdict} "
            f"({len(report.drifted_columns)} of {len(report.columns)} columns, {report.drift_share:.0%}).</p>"
            f"{_table(('column', 'type', 'method', 'value', 'threshold', 'drift', 'unseen', 'missing'), rows)}"
            f"{_legend(['reference', 'current'])}"
            f"<div class=grid>{''.join(cards)}</div>")
    return _page(title, body)
