"""`modelcycle runs …`: list, show, compare, reproduce, download and delete runs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from modelcycle.cli._common import (
    JSON_OPTION,
    client,
    console,
    duration,
    errors,
    number,
    print_json,
    printable,
    status,
    when,
)

app = typer.Typer(help="List, inspect, compare and reproduce runs.", no_args_is_help=True)


def _run_json(run) -> dict:  # type: ignore[no-untyped-def]
    data = {"run_id": run.id, **asdict(run)}  # a run's id is run_id in every --json output
    del data["id"]
    data["status"] = run.status.value
    data["duration"] = run.duration
    return data


@app.command("ls")
@errors
def ls(
    experiment: Annotated[list[str] | None, typer.Option("--experiment", "-e", help="Only these experiments.")] = None,
    filter: Annotated[str | None, typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.8 and params.model = 'rf'\"")] = None,
    order_by: Annotated[list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.auc DESC'; repeatable.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")] = 50,
    as_json: bool = JSON_OPTION,
) -> None:
    """List runs, newest first unless --order-by says otherwise."""
    runs = client().search_runs(experiment or None, filter, order_by or None, limit, as_frame=False)
    if as_json:
        print_json([_run_json(r) for r in runs])
        return
    from rich.table import Table

    con = console()
    if not runs:
        con.print("No runs match." if filter or experiment else "No runs yet. Start one with `with mc.start_run(): ...`.")
        return
    # the keys a user asked about come first; then as many as fit beside the fixed columns
    import re

    asked = re.findall(r"metrics\.([A-Za-z0-9_./-]+)", " ".join([*(order_by or []), filter or ""]))
    metric_keys = list(dict.fromkeys([*asked, *sorted({k for r in runs for k in r.metrics})]))
    param_keys = sorted({k for r in runs for k in r.params})
    room = max(2, (con.width - 60) // 11)
    metric_keys = metric_keys[: max(1, room * 2 // 3)]
    param_keys = param_keys[: max(0, room - len(metric_keys))]
    experiments = {r.experiment for r in runs}
    table = Table(title=f"{len(runs)} run(s)" + (f" of {printable(next(iter(experiments)))}" if len(experiments) == 1 else ""),
                  header_style="bold")
    table.add_column("run", no_wrap=True)
    if len(experiments) > 1:
        table.add_column("experiment", max_width=20)
    table.add_column("name", max_width=28)
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("took", no_wrap=True, justify="right")
    for k in metric_keys:
        table.add_column(printable(k), justify="right", style="bold", no_wrap=True, max_width=12)
    for k in param_keys:
        table.add_column(printable(k), style="dim", max_width=14)
    for r in runs:
        table.add_row(
            r.id[:8], *([printable(r.experiment)] if len(experiments) > 1 else []), printable(r.name or ""), status(r.status.value),
            when(r.start_time, short=True), duration(r.duration),
            *[number(r.metrics.get(k), 4) for k in metric_keys],
            *[printable(r.params.get(k, "—")) for k in param_keys],
        )
    con.print(table)


@app.command("show")
@errors
def show(run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id or a unique prefix of it.")], as_json: bool = JSON_OPTION) -> None:
    """Everything recorded about one run."""
    c = client()
    run = c.get_run(run_id)
    if as_json:
        data = _run_json(run)
        data["environment"] = c.get_environment(run)
        print_json(data)
        return
    from rich.table import Table

    con = console()
    con.print(f"[bold]{printable(run.name or run.id)}[/]  {status(run.status.value)}  experiment [bold]{printable(run.experiment)}[/]")
    con.print(f"id {run.id}   started {when(run.start_time)}   duration {duration(run.duration)}"
              + (f"   parent {printable(run.parent_id[:8])}" if run.parent_id else "")
              + (f"   reproduces {printable(run.reproduces[:8])}" if run.reproduces else ""))
    for title, items, fmt in (("params", run.params, str), ("metrics", run.metrics, number), ("tags", run.tags, str)):
        if items:
            t = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
            for k in sorted(items):
                t.add_row(printable(k), printable(fmt(items[k])))
            con.print(t)
    if run.inputs:
        t = Table(title="datasets", title_justify="left", header_style="bold")
        for col in ("name", "role", "rows", "columns", "fingerprint"):
            t.add_column(col)
        for d in run.inputs:
            t.add_row(printable(d.name), printable(d.role), number(d.rows), str(len(d.columns)), printable(d.fingerprint[:16]))
        con.print(t)
    if run.artifacts:
        t = Table(title="artifacts", title_justify="left", header_style="bold")
        t.add_column("name")
        t.add_column("size", justify="right")
        t.add_column("sha256")
        for a in run.artifacts:
            t.add_row(printable(a.path), f"{a.size:,} B", printable(a.digest[:16]))
        con.print(t)
    ctx = run.context
    t = Table(title="reproducibility", title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_row("git", f"{printable(ctx.git_commit[:12])} on {printable(ctx.git_branch or 'detached HEAD')}"
              + (" [yellow](uncommitted changes captured)[/]" if ctx.git_dirty else "") if ctx.git_commit else "not a git repository")
    t.add_row("command", printable(" ".join(ctx.command)) if ctx.command else "interactive session")
    t.add_row("directory", printable(ctx.cwd or "—"))
    t.add_row("python", printable(f"{ctx.python or '—'} on {ctx.platform or '—'}"))
    if ctx.seed is not None:
        t.add_row("seed", str(ctx.seed))
    con.print(t)
    if run.error:
        con.print("[red]error[/]")
        for line in run.error.rstrip().splitlines():  # a traceback: its lines stay lines, nothing else moves the cursor
            con.print(printable(line, markup=False), markup=False)


@app.command("compare")
@errors
def compare(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more run ids (prefixes are fine).")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Params and metrics side by side; rows whose values differ are highlighted."""
    if len(run_ids) < 2:
        from modelcycle.errors import InvalidInputError

        raise InvalidInputError("compare needs at least two run ids")
    c = client()
    runs = [c.get_run(r) for r in run_ids]
    rows = []
    for kind in ("params", "metrics"):
        for key in sorted({k for r in runs for k in getattr(r, kind)}):
            values = [getattr(r, kind).get(key) for r in runs]
            shown = [number(v) for v in values]
            rows.append((kind, key, values, len(set(shown)) > 1))
    if as_json:
        print_json({
            "run_ids": [r.id for r in runs],
            "rows": [{"kind": k, "key": key, "values": v, "differs": d} for k, key, v, d in rows],
        })
        return
    from rich.table import Table

    table = Table(header_style="bold", title="differences highlighted")
    table.add_column("")
    table.add_column("key")
    for r in runs:
        table.add_column(f"{printable(r.name or '')}\n{r.id[:8]}", justify="right")
    for kind, key, values, differs in rows:
        style = "bold yellow" if differs else "dim"
        table.add_row(kind[:-1], printable(key), *[printable(number(v)) for v in values], style=style)
    console().print(table)


@app.command("reproduce")
@errors
def reproduce(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id or a unique prefix of it.")],
    execute: Annotated[bool, typer.Option("--execute", help="Run the steps in a fresh git worktree and compare metrics.")] = False,
    install: Annotated[bool, typer.Option("--install", help="With --execute: pip install the package versions that differ.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the exact steps that reproduce a run; with --execute, run them into a new linked run.

    Exits 1 when the reproduced metrics differ from the original's.
    """
    from modelcycle.tracking import reproduce as rp

    c = client()
    plan = rp.plan(c, run_id)
    con = console()
    if not as_json:
        con.print(f"Reproduce [bold]{printable(plan.run.name or plan.run.id)}[/] ({plan.run.id[:8]}) "
                  f"of experiment [bold]{printable(plan.run.experiment)}[/]")
        for i, step in enumerate(plan.steps, 1):
            con.print(f"[bold]{i}. {printable(step.title)}[/]")
            if step.command:
                for line in step.command.splitlines():  # a command spans lines on purpose (a shell script)
                    con.print(f"   {printable(line, markup=False)}", markup=False, soft_wrap=True)
            if step.note:
                con.print(f"   [dim]{printable(step.note)}[/]")
    if not execute:
        if as_json:
            print_json({"run_id": plan.run.id, "runnable": plan.runnable, "problem": plan.problem,
                        "steps": [asdict(s) for s in plan.steps],
                        "package_changes": [{"name": n, "recorded": r, "installed": h} for n, r, h in plan.package_changes]})
        return
    if plan.package_changes and not install and not as_json:
        con.print(f"[yellow]{len(plan.package_changes)} package version(s) differ; pass --install to install them[/]")
    result = rp.execute(c, plan, install=install)
    if as_json:
        print_json({"run_id": plan.run.id, "reproduced_run_id": result.reproduced.id if result.reproduced else None,
                    "returncode": result.returncode, "matches": result.matches,
                    "metrics": [{"key": m.key, "original": m.original, "reproduced": m.reproduced, "matches": m.matches}
                                for m in result.metrics]})
    else:
        from rich.table import Table

        if result.reproduced is None:
            con.print(f"[red]the command exited with {result.returncode} and logged no run[/]")
        else:
            t = Table(title=f"original {plan.run.id[:8]} vs reproduced {result.reproduced.id[:8]}", header_style="bold")
            for col in ("metric", "original", "reproduced", ""):
                t.add_column(col, justify="right" if col in ("original", "reproduced") else "left")
            for m in result.metrics:
                t.add_row(printable(m.key), number(m.original), number(m.reproduced), "[green]same[/]" if m.matches else "[red]differs[/]")
            con.print(t)
            con.print("[green]Reproduced: every metric matches.[/]" if result.matches else "[red]Not reproduced: see the differences above.[/]")
    if not result.matches:
        raise typer.Exit(1)


@app.command("download")
@errors
def download(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id or a unique prefix of it.")],
    name: Annotated[str | None, typer.Argument(help="One artifact or folder; all when omitted.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write.")] = Path("."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy a run's artifacts to a local folder (verified against their sha256)."""
    c = client()
    run = c.get_run(run_id)
    if name and not output.is_dir() and output.suffix:
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp())
        try:
            path = c.download_artifacts(run.id, name, tmp)
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), output)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        path = output
    else:
        path = c.download_artifacts(run.id, name, output)
    if as_json:
        files = sorted(str(f) for f in path.rglob("*") if f.is_file()) if path.is_dir() else [str(path)]
        print_json({"run_id": run.id, "artifact": name, "path": str(path), "files": files})
        return
    console().print(f"wrote {printable(path)}")


@app.command("rm")
@errors
def rm(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN...", help="Runs to delete, with their child runs.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Also delete runs still RUNNING in a live process.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete runs and their records; `modelcycle gc` then frees their artifacts."""
    from modelcycle.entities import RunStatus
    from modelcycle.errors import ConflictError

    c = client()
    runs = list({r.id: r for r in (c.get_run(r) for r in run_ids)}.values())
    live = [r for r in runs if r.status is RunStatus.RUNNING]  # its process still beats: silent ones are LOST by now
    if live and not force:
        raise ConflictError(f"run {live[0].id[:8]} ({printable(live[0].name, markup=False)}) is still RUNNING in a live "
                            "process, which would fail to log more; end it first, or pass --force")
    # every check before the question: an unknown run or one whose model is registered is refused before anyone is asked
    doomed = {r.id: c.delete_run(r.id, dry_run=True) for r in runs}
    runs = [r for r in runs if not any(r.id in ids[1:] for ids in doomed.values())]  # a child goes with its parent
    total = len({i for r in runs for i in doomed[r.id]})
    if not yes:
        names = ", ".join(f"{r.id[:8]} ({printable(r.name, markup=False)})" for r in runs)
        children = total - len(runs)
        typer.confirm(f"Delete {names}" + (f" and {children} child run(s)" if children else "") + "?", abort=True,
                      err=as_json)  # stdout carries only the JSON
    deleted = [i for r in runs for i in c.delete_run(r.id)]
    if as_json:
        print_json({"run_ids": deleted})
        return
    console().print(f"deleted {len(deleted)} run(s)")
