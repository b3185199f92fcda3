"""Self-contained HTML pages for profiles, validation and drift: inline SVG charts, no scripts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelcycle._html import bars, escape, legend, number, page, table, write

if TYPE_CHECKING:
    from modelcycle.data.drift import DriftReport
    from modelcycle.data.profile import ColumnProfile, Profile
    from modelcycle.data.validate import ValidationReport

__all__ = ["distribution", "drift_html", "profile_html", "validation_html", "write"]


def distribution(cols: Sequence[ColumnProfile], bins: int = 20) -> tuple[list[str], list[list[float]]]:
    """What a chart draws for one column: labels, and per profile the share of its values in each bar.

    Columns with few distinct values get one bar per value (a 0/1 column: two bars). Other
    numbers get ``bins`` bars between the first profile's 1st and 99th percentiles, the first and
    the last bar also holding the values below and above. Categories get the most frequent values
    (the reference's, then new ones of the others) and a bar for all other values. Each profile's
    shares sum to 1, within the sketches' error for columns with many distinct values.
    """
    first = cols[0]
    few = all(c.exact is not None for c in cols) and len({k for c in cols for k in c.exact or {}}) <= bins
    if first.base in ("numeric", "integer", "datetime") and first.kind != "boolean" and not few:
        lo, hi = first.quantiles([0.01])[0], first.quantiles([0.99])[0]
        if not (lo == lo and hi == hi) or hi <= lo:
            lo, hi = first.min, first.max
        if lo is None or hi is None or not hi > lo:
            return [], []
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
        return [f"{e:.3g}" for e in edges[:-1]], [c.histogram(edges[1:-1]) for c in cols]
    if few and first.base != "string":
        values = {k for c in cols for k in c.exact or {}}
        try:
            keys: list[Any] = sorted(values)
        except TypeError:  # the type changed between the profiles
            keys = sorted(values, key=str)
    else:
        keys = [k for k, _ in first.frequent_values(10)]
        for c in cols[1:]:  # the current data's top values too, so a new category shows
            keys.extend(k for k, _ in c.frequent_values(5) if k not in keys)
    shares = []
    for c in cols:
        counts = dict(c.frequent_values(1 << 12)) if c.exact is None else c.exact
        total = c.count or 1
        shown = [min(1.0, counts.get(k, 0) / total) for k in keys]
        shares.append(shown)
    if any(sum(s) < 0.995 for s in shares):  # values not drawn one by one share one bar
        keys.append("(other)")
        for s in shares:
            s.append(max(0.0, 1.0 - sum(s)))
    return [str(k) for k in keys], shares


def profile_html(p: Profile, title: str = "Data profile") -> str:
    cards = []
    for name, c in p.columns.items():
        labels, shares = distribution([c])
        stats = (f"{escape(c.kind)} · {c.count:,} values · {c.missing:,} missing · {c.distinct:,} distinct"
                 + (f" · mean {number(c.mean)} · std {number(c.std)} · [{number(c.min)}, {number(c.max)}]"
                    if c.base in ("numeric", "integer") else ""))
        cards.append(f'<div class="card"><h2>{escape(name)}</h2><div class="muted">{stats}</div>'
                     f'{bars(labels, {"share": shares[0]}) if shares else ""}</div>')
    return page(title, f"<p>{p.rows:,} rows, {len(p.columns)} columns.</p><div class=grid>{''.join(cards)}</div>")


def validation_html(report: ValidationReport, title: str = "Data validation") -> str:
    verdict = '<span class="ok">passed</span>' if report.passed else '<span class="bad">failed</span>'
    rows = "".join(
        f"<tr><td>{escape(a.column)}</td><td>{escape(a.check)}</td>"
        f"<td class={'bad' if a.severity == 'error' else 'warn'}>{escape(a.severity)}</td><td>{escape(a.expected)}</td>"
        f"<td>{escape(a.observed)}</td><td>{escape(', '.join(repr(x) for x in a.examples[:5]))}</td></tr>"
        for a in report.anomalies
    )
    cards = []
    for column in dict.fromkeys(a.column for a in report.anomalies if a.rows):
        found = [a for a in report.anomalies if a.column == column and a.rows]
        labels = ["valid rows", *[a.check for a in found]]
        offending = sum(a.rows for a in found)
        values = [max(0, report.rows - offending), *[a.rows for a in found]]
        cards.append(f'<div class="card"><h2>{escape(column)}</h2>{bars(labels, {"rows": values})}</div>')
    headers = ("column", "check", "severity", "expected", "observed", "examples")
    found_table = table(headers, rows) if rows else "<p class=ok>No anomaly.</p>"
    body = (f"<p>{report.rows:,} rows: {verdict} — {len(report.errors)} error(s), {len(report.warnings)} warning(s).</p>"
            f"{found_table}<div class=grid>{''.join(cards)}</div>")
    return page(title, body)


def _p_value(c: Any) -> str:
    return "" if c.p_value is None else f"{number(c.p_value)} (α {number(c.alpha)})" if c.alpha is not None else number(c.p_value)


def drift_html(report: DriftReport, title: str = "Data drift") -> str:
    verdict = '<span class="bad">dataset drift</span>' if report.dataset_drift else '<span class="ok">no dataset drift</span>'
    rows = "".join(
        f"<tr><td>{escape(c.column)}</td><td>{escape(c.kind)}</td><td>{escape(c.method)}</td><td>{number(c.statistic)}</td>"
        f"<td>{number(c.threshold)}</td><td>{_p_value(c)}</td><td class={'bad' if c.drifted else 'ok'}>{escape(c.status)}</td>"
        f"<td>{escape(', '.join(map(str, c.unseen[:5])))}</td><td>{c.missing_reference:.1%} → {c.missing_current:.1%}</td>"
        f"<td>{escape(c.note or '')}</td></tr>"
        for c in report.columns.values()
    )
    rows += "".join(f"<tr><td>{escape(name)}</td><td></td><td></td><td></td><td></td><td></td><td class=bad>missing</td>"
                    "<td></td><td>—</td><td>in the reference, not in the current data</td></tr>"
                    for name in report.missing_columns)
    cards = []
    if report.reference is not None and report.current is not None:
        ordered = sorted(report.columns.values(), key=lambda c: (not c.drifted, c.column))
        for c in ordered:
            pair = [report.reference.columns[c.column], report.current.columns[c.column]]
            labels, shares = distribution(pair) if not c.type_change else ([], [])
            cls = "bad" if c.drifted else "ok"
            head = f'<div class="card"><h2>{escape(c.column)} <span class="{cls}">{escape(c.status)}</span></h2>'
            if c.type_change:
                cards.append(f'{head}<div class="muted">{escape(c.note)}</div></div>')
            elif shares:
                p = f", p {_p_value(c)}" if c.p_value is not None else ""
                cards.append(f'{head}<div class="muted">{escape(c.method)} {number(c.statistic)} '
                             f'(threshold {number(c.threshold)}){p}</div>'
                             f'{bars(labels, {"reference": shares[0], "current": shares[1]})}</div>')
    headers = ("column", "type", "method", "value", "threshold", "p-value", "drift", "unseen", "missing", "note")
    body = (f"<p>{report.reference_rows:,} reference rows, {report.current_rows:,} current rows: {verdict} "
            f"({len(report.drifted_columns)} of {len(report.columns)} columns, {report.drift_share:.0%})"
            + (f"; missing: {escape(', '.join(report.missing_columns))}" if report.missing_columns else "") + ".</p>"
            f"{table(headers, rows)}"
            f"{legend(['reference', 'current'])}"
            f"<div class=grid>{''.join(cards)}</div>")
    return page(title, body)
