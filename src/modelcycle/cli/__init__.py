"""The command line: ``modelcycle runs ls``, ``runs show``, ``experiments ls``, ``gc``, ``demo`` …"""

from __future__ import annotations

from typing import Annotated

import typer

from modelcycle.cli import data, models, ops, pipeline, project, runs
from modelcycle.cli import serve as serve_cli
from modelcycle.cli import server as server_cli
from modelcycle.cli._common import JSON_OPTION, OneLineUsageErrors, client, console, errors, print_json, printable

__all__ = ["app", "main"]

app = typer.Typer(
    name="modelcycle",
    cls=OneLineUsageErrors,
    help="Track experiments, validate data, register and promote models. Data is kept in ./.modelcycle (or MODELCYCLE_HOME).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(runs.app, name="runs")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(pipeline.app, name="pipeline")
app.command("serve")(serve_cli.serve)
app.add_typer(server_cli.app, name="server")
app.command("ui")(server_cli.ui)
app.command("predict")(serve_cli.predict)
app.command("monitor")(ops.monitor)
app.command("alerts")(ops.alerts)
app.command("agent")(ops.agent)
app.command("lineage")(ops.lineage)
app.command("ci")(project.ci)
app.command("init")(project.init)
experiments = typer.Typer(help="Experiments: named groups of runs.", no_args_is_help=True)
app.add_typer(experiments, name="experiments")


def _version(value: bool) -> None:
    if value:
        from modelcycle import __version__

        typer.echo(f"modelcycle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """modelcycle: the MLOps loop in one tool."""


@experiments.command("ls")
@errors
def experiments_ls(as_json: bool = JSON_OPTION) -> None:
    """List experiments with their number of runs."""
    exps = client().list_experiments()
    if as_json:
        print_json([{"id": e.id, "name": e.name, "created_at": e.created_at, "runs": e.run_count} for e in exps])
        return
    from rich.table import Table

    from modelcycle.cli._common import when

    if not exps:
        console().print("No experiments yet.")
        return
    table = Table(header_style="bold")
    for col in ("id", "name", "runs", "created"):
        table.add_column(col, justify="right" if col in ("id", "runs") else "left")
    for e in exps:
        table.add_row(str(e.id), printable(e.name), str(e.run_count or 0), when(e.created_at))
    console().print(table)


@app.command("gc")
@errors
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    grace: Annotated[float, typer.Option("--grace", min=0, help="Keep unreferenced blobs younger than this many seconds.")] = 3600.0,
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove artifact blobs that no run refers to any more."""
    report = client().gc(dry_run=dry_run, grace_seconds=grace)
    if as_json:
        print_json({"removed": report.removed, "freed_bytes": report.freed_bytes, "kept": report.kept, "dry_run": report.dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    console().print(f"{verb} {report.removed} blob(s), {report.freed_bytes:,} bytes; kept {report.kept}")


@app.command("demo")
@errors
def demo(
    level0: Annotated[bool, typer.Option("--level0", help="Instead: a tracked sweep of models, compared, reproducible, gated.")] = False,
) -> None:
    """The whole loop on generated data: train, serve, monitor, detect drift, retrain, gate, promote, swap (~2 minutes).

    Exits 0 only when the loop closed; otherwise says which stage did not happen, and exits 1.
    """
    from modelcycle.cli._common import fail, printable
    from modelcycle.demo import main as run_demo
    from modelcycle.errors import ModelcycleError

    try:
        run_demo(level0=level0)
    except KeyboardInterrupt:
        fail("The demo was interrupted before the loop closed; run it again to see it whole.")
        raise typer.Exit(130) from None
    except (ModelcycleError, ModuleNotFoundError):
        raise
    except Exception as e:  # the loop did not close (DemoFailed), or the demo itself broke: one paragraph, never a traceback
        from modelcycle.demo.loop import DemoFailed

        text = str(e) if isinstance(e, DemoFailed) else f"The demo stopped: {type(e).__name__}: {e}"
        fail(printable(f"The loop did not close. {text}" if isinstance(e, DemoFailed) else text))
        raise typer.Exit(1) from None


def main() -> None:
    """Console-script entry point.

    Every command is wrapped by ``errors``; this is the net under what runs outside one (callbacks,
    option parsing): a ModelcycleError or a missing optional library is still one line and exit code 1.
    """
    from modelcycle.cli._common import command_name, error_line, fail, missing_extra, printable
    from modelcycle.errors import ModelcycleError

    try:
        app()
    except ModelcycleError as e:
        fail(error_line(e))
        raise SystemExit(1) from None
    except ModuleNotFoundError as e:
        message = missing_extra(e, command_name())
        if message is None:
            raise
        fail(printable(message))
        raise SystemExit(1) from None
