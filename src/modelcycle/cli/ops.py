"""``modelcycle monitor``, ``alerts``, ``agent`` and ``lineage``: production monitoring and the closed loop."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, client, console, errors, print_json, printable, when

if TYPE_CHECKING:
    from modelcycle.entities import Cycle

__all__ = ["agent", "alerts", "lineage", "monitor"]

SPEC_OPTION = typer.Option("--spec", help="The project spec (default: ./modelcycle.yaml).")


def _spec(path: Path | None) -> Any:
    from modelcycle.automation import load_spec

    return load_spec(path)


@errors
def monitor(
    model: Annotated[str, typer.Argument(help="The model whose prediction log to read.")],
    window: Annotated[str, typer.Option("--window", "-w", help="Window length: 1h, 30m, 1d or seconds.")] = "1h",
    start: Annotated[str | None, typer.Option("--start", help="From (ISO time); default: the first logged day.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Until (ISO time); default: now.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report with charts here.")] = None,
    spec: Annotated[Path | None, typer.Option("--spec", help="Judge windows with this project's alert rules.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Data quality, drift, prediction drift and live performance of a served model, window by window."""
    from modelcycle.monitoring import monitor as run_monitor

    project = _spec(spec) if spec is not None else None
    rules = project.alert_rules() if project is not None else None
    report = run_monitor(model, window, start, end, client=client(), rules=rules,
                         drift_method=project.drift_method if project else "auto", drift_share=project.drift_share if project else None)
    if report.alerts:
        _flush_alerts(None if as_json else console())
    if html is not None:
        report.to_html(str(html))
    if as_json:
        print_json(report.to_dict())
        return
    from rich.table import Table

    con = console()
    shown = [w for w in report.windows if w.rows]
    if not shown:
        con.print(f"No logged predictions of {printable(model)} in that time.")
        return
    metric_names = sorted({k for w in shown for k in w.metrics} & {"roc_auc", "accuracy", "f1", "rmse", "mae", "r2"})
    table = Table(title=f"{printable(model)}: {len(shown)} windows of {report.window_seconds:,} s with traffic", header_style="bold")
    for col in ("window", "rows", "version", "quality", "drift", "drifted columns", "pred. drift", "labelled", *metric_names):
        table.add_column(col, justify="left" if col in ("window", "drifted columns") else "right")
    for w in shown:
        drift = w.drift or {}
        share = f"{drift['share']:.0%}" if drift else "—"
        label = printable(w.label) + ("" if w.closed else " [yellow](open)[/]")
        table.add_row(label, f"{w.rows:,}", printable(w.version or "—"), str((w.quality or {}).get("errors", "—")),
                      f"[red]{share}[/]" if drift.get("dataset_drift") else share, printable(", ".join(drift.get("drifted_columns", [])[:4])),
                      f"{w.prediction_drift['statistic']:.3f}" if w.prediction_drift else "—", f"{w.labelled:,}",
                      *[f"{w.metrics[m]:.3f}" if m in w.metrics else "—" for m in metric_names])
    con.print(table)
    if any(not w.closed for w in shown):
        con.print("[dim](open): the window is still filling; its numbers change until it ends, and alerts judge closed windows only[/]")
    for a in report.alerts:
        con.print(f"[bold]{printable(a['state'])}[/] {printable(a['rule'])}: {printable(a['message'])}")
    if html is not None:
        con.print(f"report: {printable(html)}")


@errors
def alerts(
    model: Annotated[str | None, typer.Argument(help="Only this model's alerts.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: bool = JSON_OPTION,
) -> None:
    """Alerts raised by monitoring and the controller, newest first (with their webhook delivery, when there is a webhook)."""
    found = client().store.alert_list(model, limit)
    if as_json:
        print_json(found)
        return
    from rich.markup import escape
    from rich.table import Table

    if not found:
        console().print("No alerts.")
        return
    webhook = any(a.delivery for a in found)  # only alerts raised with a webhook configured have a delivery record
    table = Table(header_style="bold")
    for col in ("id", "model", "rule", "state", "raised", "resolved", "message", *(["delivery"] if webhook else [])):
        table.add_column(col)
    for a in found:
        table.add_row(printable(a.id[:8]), printable(a.model), printable(a.rule),
                      f"[red]{printable(a.state)}[/]" if a.firing else printable(a.state),
                      when(a.raised_at), when(a.resolved_at), escape(printable(a.message, markup=False)),
                      *([_delivery(a.delivery)] if webhook else []))
    console().print(table)


def _delivery(record: Mapping[str, Any] | None) -> str:
    """A delivery record as a table cell: delivered, failed: <reason> (in red), pending."""
    if not record:
        return "—"
    from rich.markup import escape

    state = record.get("state")
    if state == "failed":
        return f"[red]failed: {escape(printable(record.get('error') or 'unknown reason', markup=False))}[/]"
    if state == "pending" and record.get("error"):  # being retried
        return f"pending (attempt {record.get('attempts')} failed: {escape(printable(record['error'], markup=False))})"
    return escape(printable(state, markup=False))


def _flush_alerts(con: Any) -> None:
    """Wait a bounded time for the alert webhook deliveries this command queued (see ``modelcycle.monitoring.webhook``)."""
    from modelcycle.monitoring.alerts import flush

    if not flush() and con is not None:
        con.print("[yellow]some alert deliveries to the webhook were still pending; `modelcycle alerts` shows their state[/]")


@errors
def agent(
    spec: Annotated[Path | None, SPEC_OPTION] = None,
    once: Annotated[bool, typer.Option("--once", help="Check the triggers and run what fires, then exit.")] = False,
    interval: Annotated[float | None, typer.Option("--interval", min=0.1, help="Seconds between checks (default: the spec's).")] = None,
    lease: Annotated[float, typer.Option("--lease", min=1, help="Seconds a cycle stays claimed without a sign of life.")] = 120.0,
    status: Annotated[bool, typer.Option("--status", help="Show the project's recent cycles, and why the agent waits, and exit.")] = False,
    now: Annotated[bool, typer.Option("--now", help="Run one cycle now, whatever the triggers say (e.g. the first model), and exit.")] = False,
    trust: Annotated[bool, typer.Option("--trust", help="Allow pickled PythonModel versions to load (they can run any code).")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """The controller: evaluates the spec's triggers and runs train → gate → promote cycles.

    Model files may build only library types and those named in MODELCYCLE_TRUSTED_TYPES.
    """
    from modelcycle.automation import Agent

    project = _spec(spec)
    c = client()
    if status:
        cycles = c.store.cycle_list(project.name, 50)
        waiting = Agent(project, client=c, say=lambda _: None).explain()
        if as_json:
            print_json({"cycles": cycles, "waiting": waiting})
            return
        _cycles_table(cycles, project.name)
        if waiting:
            console().print(f"[bold]Now:[/] {printable(waiting)}")
        return
    con = console()

    def say(line: str) -> None:
        if not as_json:
            from rich.markup import escape

            con.print(f"[dim]{when(__import__('time').time())}[/] {escape(printable(line, markup=False))}")

    runner = Agent(project, client=c, lease_seconds=lease, say=say, trust=trust)
    if now:
        try:
            cycle = runner.run_now("modelcycle agent --now")
        finally:
            _flush_alerts(None if as_json else con)
        if as_json:
            print_json([cycle])
        else:
            _cycles_table([cycle], project.name)
        if cycle.state == "failed":
            raise typer.Exit(1)
        return
    if once:
        try:
            done = runner.run_once()
        finally:
            _flush_alerts(None if as_json else con)
        if as_json:
            print_json(done)
        elif not done:
            con.print("No trigger fired.")
        else:
            _cycles_table(done, project.name)
        if any(cy.state == "failed" for cy in done):
            raise typer.Exit(1)
        return
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    say(f"agent for {project.name}: checking {len(project.triggers)} trigger(s) every {interval or project.interval:g} s")
    try:
        runner.run_forever(interval)
    except KeyboardInterrupt:
        runner.stop()


def _cycles_table(cycles: list[Cycle], project: str) -> None:
    from rich.table import Table

    if not cycles:
        console().print(f"No cycles for {printable(project)} yet.")
        return
    table = Table(title=f"continuous training: {printable(project)}", header_style="bold")
    for col in ("cycle", "trigger", "state", "started", "pipeline run", "version", "verdict", "note"):
        table.add_column(col)
    for cy in cycles:
        style = {"done": "green", "rejected": "yellow", "no_change": "yellow", "failed": "red", "rolled_back": "red"}.get(cy.state, "cyan")
        note = cy.why if cy.finished else ""
        attempt = f" (attempt {cy.attempt})" if cy.attempt > 1 else ""
        table.add_row(printable(cy.id[:8]), printable(cy.trigger + attempt), f"[{style}]{printable(cy.state)}[/]", when(cy.started_at),
                      printable((cy.run_id or "—")[:8]), printable(cy.version or "—"), printable((cy.verdict_id or "—")[:8]),
                      printable(note[:80]))
    console().print(table)


@errors
def lineage(
    ref: Annotated[str, typer.Argument(help="A cycle, alert, run or verdict id (a prefix is enough), an alias event or name/version.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Walk a continuous-training cycle: trigger → pipeline run → candidate → verdict → alias move → served version."""
    from modelcycle.automation import lineage as walk

    found = walk(ref, client=client())
    if as_json:
        print_json(found)
        return
    from rich.tree import Tree

    root = Tree(f"[bold]cycle {printable(found['cycle_id'][:8])}[/] ({printable(found['project'])}) {printable(found['state'])}, "
                f"started {printable(found['started'])}")
    node = root
    for link in found["chain"]:
        fields = ", ".join(f"{k}={v}" for k, v in link.items() if k != "step" and v not in (None, [], ""))
        node = node.add(f"[bold]{printable(link['step'])}[/] {printable(fields)}")
    if found.get("error"):
        root.add(f"[red]error[/] {printable(found['error'])}")
    console().print(root)
