"""`modelcycle data …`: profile a file, infer its schema, validate it, compare two files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, console, errors, number, print_json, printable

app = typer.Typer(help="Profile, validate and compare datasets (CSV or Parquet).", no_args_is_help=True)

FILE = typer.Argument(help="A CSV or Parquet file.", exists=False)
HTML_OPTION = typer.Option(None, "--html", help="Also write an HTML report with charts here.")


@contextlib.contextmanager
def _progress(path: Path, what: str, quiet: bool) -> Iterator[Any]:
    """A progress bar over the rows of ``path`` (a spinner when the total is unknown)."""
    from modelcycle.data.profile import total_rows

    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    total = total_rows(path)
    with Progress(SpinnerColumn(), TextColumn(f"{what} {printable(path.name)}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("rows"), TimeElapsedColumn(), console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda rows: bar.update(task, completed=rows)


def _emit(report: Any, html: Path | None, as_json: bool) -> bool:
    """Write the HTML page when asked, print JSON when asked; True when a table is still to be shown."""
    if html is not None:
        report.to_html(str(html))
    if as_json:
        print_json(report.summary() if hasattr(report, "summary") else report.to_dict())
    return not as_json


@app.command("profile")
@errors
def profile_cmd(path: Annotated[Path, FILE], html: Path | None = HTML_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Per-column statistics: type, missing values, distinct values, range, quantiles, frequent values."""
    from modelcycle.data import profile

    with _progress(path, "profiling", as_json) as tick:
        p = profile(path, progress=tick)
    if not _emit(p, html, as_json):
        return
    from rich.table import Table

    table = Table(title=f"{printable(path.name)}: {p.rows:,} rows, {len(p.columns)} columns", header_style="bold")
    for col in ("column", "type", "missing", "distinct", "min", "median", "max", "mean", "top values"):
        table.add_column(col, justify="left" if col in ("column", "type", "top values") else "right")
    for name, c in p.columns.items():
        total = c.count + c.missing
        top = ", ".join(f"{v} ({n:,})" for v, n in c.frequent_values(3)) if c.kind in ("categorical", "boolean", "text") else ""
        numeric = c.base in ("numeric", "integer", "datetime")
        show = _moment if c.base == "datetime" else lambda v: number(v, 4)  # a time: nanoseconds since the epoch
        table.add_row(
            printable(name), printable(c.kind), f"{c.missing / total:.1%}" if total else "—", f"{c.distinct:,}",
            show(c.min) if numeric else "", show(c.quantiles([0.5])[0]) if numeric else "",
            show(c.max) if numeric else "", number(c.mean, 4) if numeric and c.kind != "datetime" else "", printable(top),
        )
    console().print(table)


def _moment(nanoseconds: Any) -> str:
    """A datetime column's value (nanoseconds since the epoch, UTC) as a time a person reads."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromtimestamp(float(nanoseconds) / 1e9, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return number(nanoseconds, 4)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.time().isoformat() != "00:00:00" else "%Y-%m-%d")


@app.command("infer-schema")
@errors
def infer_schema_cmd(
    path: Annotated[Path, FILE],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the YAML schema.")] = Path("schema.yaml"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write the schema the data follows, as YAML to review and edit."""
    from dataclasses import asdict

    from modelcycle.data import infer_schema, profile

    with _progress(path, "profiling", as_json) as tick:
        schema = infer_schema(profile(path, progress=tick))
    schema.save(output)
    if as_json:
        print_json({"path": str(output), "columns": {name: asdict(c) for name, c in schema.columns.items()}})
        return
    console().print(f"wrote {printable(output)} ({len(schema.columns)} columns); review it, "
                    f"then `modelcycle data validate FILE --schema {printable(output)}`")


@app.command("validate")
@errors
def validate_cmd(
    path: Annotated[Path, FILE],
    schema: Annotated[Path, typer.Option("--schema", "-s", help="The YAML schema to check against.")],
    html: Path | None = HTML_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a file against a schema; exits 1 when an error-severity anomaly is found."""
    from modelcycle.data import Schema, validate

    expected = Schema.load(schema)
    with _progress(path, "validating", as_json) as tick:
        report = validate(path, expected, progress=tick)
    if _emit(report, html, as_json):
        from rich.table import Table

        con = console()
        if not report.anomalies:
            con.print(f"[green]{printable(path.name)}: {report.rows:,} rows, no anomaly[/]")
        else:
            table = Table(title=f"{printable(path.name)}: {report.rows:,} rows", header_style="bold")
            for col in ("column", "check", "severity", "expected", "observed", "examples"):
                table.add_column(col)
            for a in report.anomalies:
                style = "red" if a.severity == "error" else "yellow"
                table.add_row(printable(a.column), printable(a.check), f"[{style}]{printable(a.severity)}[/]", printable(a.expected),
                              printable(a.observed), printable(", ".join(repr(x) for x in a.examples[:3])))
            con.print(table)
            verdict = "[red]failed[/]" if not report.passed else "[green]passed[/] with warnings"
            con.print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    if not report.passed:
        raise typer.Exit(1)


@app.command("compare")
@errors
def compare_cmd(
    reference: Annotated[Path, typer.Argument(help="The reference data (what a model was trained on).")],
    current: Annotated[Path, typer.Argument(help="The data to check.")],
    method: Annotated[str, typer.Option("--method", "-m", help="auto, ks, chi2, psi, wasserstein, js or linf.")] = "auto",
    html: Path | None = HTML_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Drift per column between two files; exits 1 when the dataset has drifted or a column is missing."""
    from modelcycle.data import compare, profile

    with _progress(reference, "profiling", as_json) as tick:
        ref = profile(reference, progress=tick)
    with _progress(current, "profiling", as_json) as tick:
        cur = profile(current, progress=tick)
    report = compare(ref, cur, method=method)
    if _emit(report, html, as_json):
        from rich.table import Table

        table = Table(title=f"{printable(current.name)} against {printable(reference.name)}", header_style="bold")
        for col in ("column", "type", "method", "value", "threshold", "p-value", "drift", "notes"):
            table.add_column(col, justify="right" if col in ("value", "threshold", "p-value") else "left")
        for c in report.columns.values():
            notes = []
            if c.type_change:
                notes.append(f"type changed: {c.type_change}")
            if c.unseen:
                notes.append(f"unseen: {', '.join(map(str, c.unseen[:3]))} ({c.unseen_share:.1%})")
            if abs(c.missing_current - c.missing_reference) >= 0.01:
                notes.append(f"missing {c.missing_reference:.1%} → {c.missing_current:.1%}")
            if c.note and not c.type_change and "hash" in c.note:
                notes.append("compared over hashed values")
            status = "[red]type changed[/]" if c.type_change else "[red]drifted[/]" if c.drifted else "[green]ok[/]"
            value, threshold = ("", "") if c.type_change else (number(c.statistic, 4), number(c.threshold, 4))
            table.add_row(printable(c.column), printable(c.kind), printable(c.method), value, threshold,
                          number(c.p_value, 3) if c.p_value is not None else "", status, printable("; ".join(notes)))
        for name in report.missing_columns:
            table.add_row(printable(name), "", "", "", "", "", "[red]missing[/]", "in the reference, not in the current data")
        con = console()
        con.print(table)
        con.print(f"{len(report.drifted_columns)} of {len(report.columns)} columns drifted ({report.drift_share:.0%}); "
                  + ("[red]dataset drift[/]" if report.dataset_drift else "[green]no dataset drift[/]"))
    if report.dataset_drift or report.missing_columns:
        raise typer.Exit(1)
