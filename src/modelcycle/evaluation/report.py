"""Self-contained HTML for evaluations and verdicts: metric tables, confusion matrix, calibration curve, slices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelcycle._html import bars, escape, legend, number, page, table, write

if TYPE_CHECKING:
    from modelcycle.evaluation.gate import Verdict
    from modelcycle.evaluation.metrics import Evaluation

__all__ = ["evaluation_html", "verdict_html", "write"]


def _calibration_svg(predicted: list[float], observed: list[float], size: int = 260) -> str:
    pad = 28
    span = size - 2 * pad

    def xy(p: float, o: float) -> tuple[float, float]:
        return pad + p * span, size - pad - o * span

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(p, o) for p, o in zip(predicted, observed, strict=True)))
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#4c78a8"><title>predicted {p:.2f}, observed {o:.2f}</title></circle>'
                   for (x, y), p, o in ((xy(p, o), p, o) for p, o in zip(predicted, observed, strict=True)))
    return (f'<svg width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img">'
            f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#ccc"/>'
            f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#bbb" stroke-dasharray="4 3"/>'
            f'<polyline points="{points}" fill="none" stroke="#4c78a8" stroke-width="2"/>{dots}'
            f'<text x="{pad}" y="{size - 8}" font-size="10" fill="#555">predicted probability →</text>'
            f'<text x="4" y="{pad - 8}" font-size="10" fill="#555">observed share ↑</text></svg>')


def _confusion(ev: Evaluation) -> str:
    if not ev.confusion:
        return ""
    labels, matrix = ev.confusion["labels"], ev.confusion["matrix"]
    top = max((v for row in matrix for v in row), default=1) or 1
    rows = "".join(
        f"<tr><th>{escape(label)}</th>" + "".join(
            f'<td style="background:rgba(76,120,168,{0.1 + 0.8 * v / top:.2f})">{v:,}</td>' for v in row) + "</tr>"
        for label, row in zip(labels, matrix, strict=True))
    head = "<tr><th>actual \\ predicted</th>" + "".join(f"<th>{escape(label)}</th>" for label in labels) + "</tr>"
    return f'<div class="card"><h2>Confusion matrix</h2><table>{head}{rows}</table></div>'


def evaluation_html(ev: Evaluation, title: str | None = None) -> str:
    base = ev.baseline
    names = [ev.model or "candidate"] + ([base.model or "baseline"] if base else [])
    if base and names[0] == names[1]:
        names = [f"{names[0]} (candidate)", f"{names[1]} (baseline)"]
    metric_rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{number(v)}</td>" + (f"<td>{number(base.metrics.get(k))}</td>" if base else "") + "</tr>"
        for k, v in ev.metrics.items())
    metric_rows += (f"<tr><td>latency (ms per row)</td><td>{number(ev.latency_ms_per_row)}</td>"
                    + (f"<td>{number(base.latency_ms_per_row)}</td>" if base else "") + "</tr>")
    body = [f'<p class="muted">{ev.task}, {ev.rows:,} rows' + (", baseline on the same rows" if base else "") + "</p>",
            table(["metric", *names], metric_rows), '<div class="grid">', _confusion(ev)]
    if ev.calibration:
        body.append(f'<div class="card"><h2>Calibration</h2>{_calibration_svg(ev.calibration["predicted"], ev.calibration["observed"])}'
                    '<div class="muted">on the dashed line, predicted probabilities match observed frequencies</div></div>')
    key = next((m for m in ("roc_auc", "f1", "accuracy", "r2", "rmse") if m in ev.metrics), None)
    for col, groups in ev.slices.items():
        if key is None:
            break
        labels = list(groups)
        series = {names[0]: [groups[v].get(key, float("nan")) for v in labels]}
        if base and col in base.slices:
            series[names[1]] = [base.slices[col].get(v, {}).get(key, float("nan")) for v in labels]
        rows = "".join(f"<tr><td>{escape(v)}</td><td>{int(groups[v]['rows']):,}</td><td>{number(groups[v].get(key))}</td>"
                       + (f"<td>{number(base.slices.get(col, {}).get(v, {}).get(key))}</td>" if base else "") + "</tr>" for v in labels)
        short = ["candidate", "baseline"][: len(names)]
        body.append(f'<div class="card"><h2>{escape(key)} by {escape(col)}</h2>{bars(labels, series)}{legend(list(series))}'
                    f'{table([col, "rows", *short], rows)}</div>')
    body.append("</div>")
    return page(title or f"Evaluation of {ev.model or 'the model'}", "".join(body))


def verdict_html(verdict: Verdict, evaluation: Evaluation | None = None) -> str:
    rows = "".join(
        f'<tr><td>{escape(r.rule)}</td><td class="{"ok" if r.passed else "bad"}">{"pass" if r.passed else "FAIL"}</td>'
        f"<td>{escape(r.expected)}</td><td>{escape(r.detail)}</td></tr>" for r in verdict.rules)
    state = '<p class="ok">PASSED</p>' if verdict.passed else '<p class="bad">FAILED</p>'
    extra = evaluation_html(evaluation).split("<body>", 1)[1].rsplit("</body>", 1)[0] if evaluation else ""
    return page(f"Verdict for {verdict.model_name}/{verdict.model_version}",
                 state + table(["rule", "result", "expected", "evidence"], rows) + extra)
