"""``modelcycle ci`` and ``modelcycle init``: check a project in CI (and promote on main); start a new one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, client, console, errors, print_json, printable, when

__all__ = ["ci", "init"]

_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


@errors
def ci(
    spec: Annotated[Path | None, typer.Option("--spec", help="The project spec (default: ./modelcycle.yaml).")] = None,
    sample_rows: Annotated[int, typer.Option("--sample-rows", min=1, help="Rows from the start of the data the checks use.")] = 2000,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here (one test case per check).")] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="Write a Markdown summary here (e.g. for $GITHUB_STEP_SUMMARY).")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="Then register, gate and promote the model trained on all the data.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a project: validate a data sample, run the pipeline on it, gate its model. Exit code 1 when a check fails."""
    import time

    from modelcycle.automation.ci import run_ci
    from modelcycle.automation.spec import load_spec

    project = load_spec(spec)
    con = console()

    def say(line: str) -> None:
        if not as_json:
            con.print(f"[dim]{when(time.time())}[/] {printable(line)}")

    report = run_ci(project, client=client(), sample_rows=sample_rows, junit=junit, summary=summary, promote=promote, say=say)
    if as_json:
        print_json(report.to_dict())
    else:
        _report_table(report)
        for path, what in ((junit, "JUnit report"), (summary, "summary")):
            if path is not None:
                con.print(f"{what}: {printable(str(path))}")
    if not report.passed:
        raise typer.Exit(1)


def _report_table(report: Any) -> None:
    from rich.table import Table

    verdict = "[green]passed[/]" if report.passed else f"[bold red]failed[/] ({len(report.failures)} of {len(report.checks)} checks)"
    table = Table(title=f"modelcycle ci: {printable(report.project)} — {verdict}", header_style="bold")
    for col in ("check", "result", "details", "took"):
        table.add_column(col, overflow="fold", justify="right" if col == "took" else "left")
    for c in report.checks:
        table.add_row(printable(c.name), f"[{_STYLE.get(c.status, '')}]{c.status}[/]", printable(c.message), f"{c.seconds:.1f} s")
    console().print(table)
    if report.promoted:
        p = report.promoted
        console().print(f"promoted {printable(p['model'])}@{printable(p['alias'])} to version {p['version']}")


@errors
def init(
    name: Annotated[str, typer.Argument(help="The project's name, also its model's: letters, digits, '-' and '_'.")],
    path: Annotated[Path | None, typer.Option("--path", help="The folder to write it in (default: ./NAME); new or empty.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start a project: spec, pipeline, schema, gate, unit tests and CI/CD (GitHub Actions and Jenkins) that run as written."""
    from modelcycle.automation.scaffold import init_project

    folder = path if path is not None else Path.cwd() / name
    written = init_project(name, folder)
    if as_json:
        print_json({"project": name, "path": str(folder.resolve()), "files": [str(f.relative_to(folder)) for f in written]})
        return
    con = console()
    con.print(f"Created {printable(name)} in {printable(str(folder))}:")
    for f in written:
        con.print(f"  {printable(str(f.relative_to(folder)))}")
    try:
        where = folder.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        where = folder.resolve()
    con.print("\nNext:")
    for line in (f"cd {where}", "python pipelines/training.py        # an example dataset in data/",
                 "modelcycle ci                       # check data, pipeline and gate",
                 "modelcycle agent --once             # train, gate and promote",
                 f"modelcycle serve models:/{name}@champion"):
        con.print(f"  {printable(line)}")
