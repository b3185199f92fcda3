"""The project's HTML toolkit: self-contained pages with inline SVG charts, no scripts.

Every report (profiles, validation, drift, evaluation, verdicts, monitoring, feature selection)
is drawn with these pieces, so escaping, number formatting and the charts behave the same on
every page. Everything put on a page goes through :func:`escape`.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLORS", "bars", "escape", "legend", "lines", "number", "page", "table", "write"]

COLORS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .3rem}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}th{background:#f5f5f5}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}
.card{border:1px solid #e3e3e3;border-radius:8px;padding:.8rem;overflow-x:auto}.bad{color:#c0392b;font-weight:600}.ok{color:#2e7d32}
.warn{color:#b26a00;font-weight:600}.muted{color:#777;font-size:.85rem}.legend span{margin-right:1rem}
"""


def escape(value: Any) -> str:
    """Any value as text safe inside HTML elements and quoted attributes.

    Example:
        >>> escape('<b a="1">')
        '&lt;b a=&quot;1&quot;&gt;'
    """
    return html.escape(str(value))


def number(value: Any) -> str:
    """A number for people: 4 significant digits for floats, thousands separators for integers, — for none.

    Example:
        >>> number(0.123456), number(12345), number(None)
        ('0.1235', '12,345', '—')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return escape(value)
    return f"{value:.4g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else escape(value)


def legend(names: Sequence[str]) -> str:
    """Coloured squares naming the series of a chart, in the charts' colour order."""
    return '<div class="legend muted">' + "".join(
        f'<span style="color:{COLORS[i % len(COLORS)]}">■</span>{escape(n)} ' for i, n in enumerate(names)) + "</div>"


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
                f'fill="{COLORS[j % len(COLORS)]}"><title>{escape(name)} {escape(label)}: {v:.4g}</title></rect>'
            )
        if n <= 12 or i % max(1, n // 8) == 0:
            parts.append(f'<text x="{x0:.1f}" y="{height - 6}" font-size="9" fill="#555">{escape(str(label)[:10])}</text>')
    parts.append(f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#999"/></svg>')
    return "".join(parts)


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], width: int = 520, height: int = 170,
          threshold: float | None = None, lo: float | None = None, hi: float | None = None) -> str:
    """Lines over time as inline SVG with their legend; gaps (None, NaN) break a line; an optional dashed threshold."""
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
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"><title>{escape(name)} '
                         f'{escape(labels[i])}: {v:.4g}</title></circle>')
        if len(segment) > 1:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(segment)}"/>')
    step = max(1, n // 6)
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i) - 14:.1f}" y="{height - 6}" font-size="9" fill="#555">{escape(labels[i][-8:])}</text>')
    parts.append("</svg>")
    return "".join(parts) + legend(list(series))


def table(headers: Sequence[str], rows: str) -> str:
    """A table with escaped headers around rows already rendered as ``<tr>`` elements."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{rows}</table>"


def page(title: str, body: str) -> str:
    """A whole page: the title as heading, the shared style, the body as given."""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


def write(text: str, path: str | os.PathLike[str] | None) -> str:
    """Write a page to ``path`` (when given) and return it."""
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
