"""`modelcycle pipeline …`: run a pipeline from a file with a live view, list runs, show steps, explain the cache."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, client, console, duration, errors, fail, print_json, printable, status, when
from modelcycle.errors import InvalidInputError, NotFoundError
from modelcycle.pipelines.loader import load_pipeline

app = typer.Typer(help="Run pipelines, list their runs, show their steps, explain cache misses.", no_args_is_help=True)

_STYLE = {"running": "yellow", "finished": "green", "cached": "cyan", "failed": "bold red", "skipped": "dim", "pending": "dim"}


def _params(pipe: Any, config: Path | None, values: list[str]) -> dict[str, Any]:
    from modelcycle import _yaml
    from modelcycle.pipelines.core import convert_cli_value

    params: dict[str, Any] = {}
    if config is not None:
        try:
            loaded = _yaml.load(config.read_text(), source=str(config)) or {}
        except (OSError, _yaml.YAMLError) as e:
            raise InvalidInputError(f"cannot read the config {config}: {e}") from None
        if not isinstance(loaded, dict):
            raise InvalidInputError(f"{config}: the config must map parameter names to values")
        params.update(loaded)
    for item in values:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise InvalidInputError(f"-p {item!r}: write parameters as name=value, e.g. -p C=0.5")
        key = key.strip()
        if key not in pipe.signature.parameters:
            raise InvalidInputError(f"pipeline {pipe.name!r} has no parameter {key!r}; its parameters: {', '.join(pipe.signature.parameters)}")
        annotation = pipe.hints.get(key, pipe.signature.parameters[key].annotation)
        params[key] = convert_cli_value(pipe.name, key, text, annotation)
    return params


def _table(result_steps: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    table = Table(title=printable(title), header_style="bold")
    for col in ("step", "status", "took", "run", "why"):
        table.add_column(col, overflow="fold")
    for name, s in result_steps.items():
        st = s["status"] if isinstance(s, dict) else s.status
        dur = s["duration"] if isinstance(s, dict) else s.duration
        run_id = s["run_id"] if isinstance(s, dict) else s.run_id
        reason = (s.get("error") or s["reason"]) if isinstance(s, dict) else (s.error or s.reason)
        table.add_row(printable(name), f"[{_STYLE.get(st, '')}]{printable(st)}[/]", f"{dur:.2f} s" if dur else "—",
                      printable((run_id or "—")[:8]), printable(reason or ""))
    return table


@app.command("run")
@errors
def run(
    target: Annotated[str, typer.Argument(metavar="FILE.py:PIPELINE", help="The pipeline, e.g. pipelines/training.py:training.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value; repeatable.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of parameters (-p wins).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local, dask, or dask://host:port.")] = "local",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, even when a cached result matches.")] = False,
    from_step: Annotated[str | None, typer.Option("--from-step", help="Run this step and everything after it again.")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Experiment (default: the pipeline's name).")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a pipeline: a live view of its steps, then a summary. Exit code 1 when a step fails."""
    from rich.live import Live

    from modelcycle.errors import PipelineError
    from modelcycle.tracking import fluent

    pipe = load_pipeline(target)
    params = _params(pipe, config, param or [])
    cl = client()
    previous = fluent.set_client(cl)
    states: dict[str, dict[str, Any]] = {}
    started: dict[str, float] = {}
    lock = threading.Lock()
    con = console()

    def progress(name: str, state: str) -> None:
        with lock:
            if state == "running":
                started[name] = time.perf_counter()
            took = time.perf_counter() - started[name] if name in started and state != "running" else 0.0
            states[name] = {"status": state, "duration": took, "run_id": None, "reason": "", "error": None}

    outcome: Any = None
    failure: PipelineError | None = None
    try:
        if as_json:
            outcome = pipe.run(executor=executor, cache=not no_cache, from_step=from_step, experiment=experiment, client=cl, **params)
        else:
            with Live(_table(states, f"{pipe.name}"), console=con, refresh_per_second=8, transient=True) as live:
                def update(name: str, state: str) -> None:
                    progress(name, state)
                    live.update(_table(dict(states), f"{pipe.name}"))

                outcome = pipe.run(executor=executor, cache=not no_cache, from_step=from_step, experiment=experiment, client=cl,
                                   progress=update, **params)
    except PipelineError as e:
        failure = e
        outcome = e.result
    finally:
        fluent.set_client(previous)
    if as_json:
        print_json(outcome.to_dict() if outcome is not None else {"error": str(failure)})
    elif outcome is not None:
        con.print(_table(outcome.steps, f"{pipe.name} — run {outcome.run_id[:8]} {outcome.status}"))
        cached = sum(1 for s in outcome.steps.values() if s.cached)
        con.print(f"{len(outcome.steps)} steps, {cached} from the cache. `modelcycle pipeline show {printable(outcome.run_id[:8])}` for lineage.")
        if failure is None:
            _print_output(con, outcome)
    if failure is not None:
        raise fail(printable(failure))  # one line, however long


def _print_output(con: Any, outcome: Any) -> None:
    """What the pipeline returned, when it is small JSON (metrics, a decision); nothing for frames or models."""
    try:
        text = json.dumps(outcome.output, indent=1, default=None)
    except (TypeError, ValueError, KeyError):
        return
    if len(text) <= 2000:
        from rich.markup import escape

        con.print("returned: " + escape(text))


def _pipeline_json(run_id: str) -> tuple[Any, dict[str, Any]]:
    cl = client()
    run = cl.get_run(run_id)
    if run.tags.get("modelcycle.kind") != "pipeline":
        raise InvalidInputError(f"run {run.id[:8]} is not a pipeline run; `modelcycle pipeline ls` lists them")
    try:
        data = json.loads(cl.read_artifact(run.id, "pipeline.json"))
    except NotFoundError:
        raise NotFoundError(f"pipeline run {run.id[:8]} has no step record yet (it is {run.status.value})") from None
    return run, data


@app.command("ls")
@errors
def ls(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")] = 30,
    as_json: bool = JSON_OPTION,
) -> None:
    """Pipeline runs, newest first."""
    runs = client().search_runs(filter="tags.`modelcycle.kind` = 'pipeline'", limit=limit, as_frame=False)
    if as_json:
        print_json([{"run_id": r.id, "pipeline": r.tags.get("modelcycle.pipeline"), "status": r.status.value,
                     "start_time": r.start_time, "duration": r.duration, "params": r.params} for r in runs])
        return
    from rich.table import Table

    if not runs:
        console().print("No pipeline runs yet: `modelcycle pipeline run file.py:pipeline`.")
        return
    table = Table(title=f"{len(runs)} pipeline run(s)", header_style="bold")
    for col in ("run", "pipeline", "status", "started", "took", "executor", "params"):
        table.add_column(col, overflow="fold")
    for r in runs:
        table.add_row(r.id[:8], printable(r.tags.get("modelcycle.pipeline", "")), status(r.status.value), when(r.start_time, short=True),
                      duration(r.duration), printable(r.tags.get("modelcycle.executor", "")),
                      printable(", ".join(f"{k}={v}" for k, v in r.params.items())))
    console().print(table)


@app.command("show")
@errors
def show(run_id: Annotated[str, typer.Argument(help="A pipeline run (a unique prefix is enough).")], as_json: bool = JSON_OPTION) -> None:
    """A pipeline run's steps: status, duration, cache hits, and the lineage of their outputs."""
    run, data = _pipeline_json(run_id)
    if as_json:
        print_json({"run_id": run.id, "status": run.status.value, **data})
        return
    con = console()
    con.print(f"[bold]{printable(data['pipeline'])}[/] run {run.id[:8]} {status(run.status.value)}, executor {printable(data.get('executor'))}, "
              f"params: {printable(', '.join(f'{k}={v}' for k, v in data.get('params', {}).items()) or 'none')}")
    con.print(_table(data["steps"], "steps"))
    from rich.tree import Tree

    tree = Tree("lineage (each output, and the outputs it was made from)")
    for name, s in data["steps"].items():
        out = s.get("output") or {}
        label = f"{name} → {out.get('kind', '—')} {str(out.get('fingerprint', ''))[:12]}"
        node = tree.add(printable(label))
        for up in s.get("upstream", []):
            upo = data["steps"].get(up, {}).get("output") or {}
            node.add(printable(f"from {up} ({str(upo.get('fingerprint', ''))[:12]})"))
    con.print(tree)


@app.command("explain")
@errors
def explain(
    run_id: Annotated[str, typer.Argument(help="A pipeline run.")],
    step: Annotated[str, typer.Argument(help="One of its steps.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Why a step ran instead of coming from the cache (or which run it was cached from), and its cache key's parts."""
    run, data = _pipeline_json(run_id)
    steps = data["steps"]
    if step not in steps:
        raise InvalidInputError(f"pipeline run {run.id[:8]} has no step {step!r}; its steps: {', '.join(steps)}")
    s = steps[step]
    components = ((s.get("output") or {}).get("meta") or {}).get("components")
    if as_json:
        print_json({"step": step, "status": s["status"], "cached": s["cached"], "reason": s["reason"], "cache_key": s.get("cache_key"),
                    "components": components})
        return
    con = console()
    verb = "came from the cache" if s["cached"] else "was not cached" if s["status"] in ("finished", "failed") else s["status"]
    con.print(f"step [bold]{printable(step)}[/] of run {run.id[:8]} {printable(verb)}: {printable(s['reason'] or '—')}")
    if s.get("error"):
        con.print(f"  error: {printable(s['error'])}")
    if s.get("cache_key"):
        con.print(f"  cache key {printable(s['cache_key'])}")
    if components:
        con.print(f"  source sha256 {printable(components['source'][:16])}…")
        for arg, fp in components.get("inputs", {}).items():
            con.print(f"  input {printable(arg)}: {printable(json.dumps(fp)[:80])}")
        for arg, value in components.get("params", {}).items():
            con.print(f"  parameter {printable(arg)} = {printable(json.dumps(value)[:80])}")
