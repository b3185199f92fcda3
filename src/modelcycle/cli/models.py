"""`modelcycle models …`: registered models, their versions, aliases, audit log, validation and promotion."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, client, console, errors, print_json, printable, when

if TYPE_CHECKING:
    from modelcycle.registry import Registry

app = typer.Typer(help="Registered models: versions, aliases, their audit log, validation gates.", no_args_is_help=True)


def _registry() -> Registry:
    from modelcycle.registry import Registry

    return Registry(client())


def _version_json(v: Any) -> dict[str, Any]:
    data = asdict(v)
    data["tags"] = dict(v.tags)
    data["aliases"] = list(v.aliases)
    data["uri"] = v.uri
    return data


def _event_json(e: Any) -> dict[str, Any]:
    return asdict(e)


@app.command("ls")
@errors
def ls(as_json: bool = JSON_OPTION) -> None:
    """List registered models with their latest version and aliases."""
    models = _registry().list_models()
    if as_json:
        print_json(models)
        return
    from rich.table import Table

    con = console()
    if not models:
        con.print("No registered models yet. Register one with mc.register_model(logged.uri, \"name\").")
        return
    table = Table(title=f"{len(models)} registered model(s)", header_style="bold")
    for col in ("name", "versions", "latest", "aliases", "updated"):
        table.add_column(col, justify="right" if col in ("versions", "latest") else "left")
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in m["aliases"].items())
        table.add_row(printable(m["name"]), str(m["versions"]), str(m["latest"] or "—"), printable(aliases or "—"), when(m["updated_at"]))
    con.print(table)


@app.command("show")
@errors
def show(
    spec: Annotated[str, typer.Argument(metavar="NAME[@ALIAS|/VERSION]", help="A model, or one of its versions (models:/… too).")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a model's versions, or one version in detail (signature, requirements, verdicts)."""
    from modelcycle.registry.uri import NAME_RE

    registry = _registry()
    if NAME_RE.match(spec):
        name = spec
        versions = registry.search_model_versions(f"name = '{registry.get_model_version(name).name}'")
        if as_json:
            print_json([_version_json(v) for v in versions])
            return
        from rich.table import Table

        table = Table(title=f"{printable(name)}: {len(versions)} version(s)", header_style="bold")
        for col in ("version", "aliases", "flavour", "run", "created", "by", "sha256", "tags"):
            table.add_column(col, justify="right" if col == "version" else "left")
        for v in versions:
            table.add_row(str(v.version), printable(", ".join(v.aliases) or "—"), printable(v.flavour), printable(v.run_id[:8]),
                          when(v.created_at), printable(v.created_by or ""), printable(v.hash[:12]),
                          printable(", ".join(f"{k}={val}" for k, val in v.tags.items())))
        console().print(table)
        return
    version = _version(registry, spec)
    manifest, _ = registry._run_package(registry.client.get_run(version.run_id), version.artifact_path)
    verdicts = registry.verdicts(version.name, version.version)
    if as_json:
        print_json({**_version_json(version), "signature": manifest.signature.to_dict() if manifest.signature else None,
                    "requirements": manifest.requirements, "model_class": manifest.model_class,
                    "files": {k: asdict(f) for k, f in manifest.files.items()}, "verdicts": [v.to_dict() for v in verdicts]})
        return
    from rich.table import Table

    con = console()
    con.print(f"[bold]{printable(version.name)}[/] version [bold]{version.version}[/]"
              + (f"  aliases: {printable(', '.join(version.aliases))}" if version.aliases else ""))
    con.print(f"  {printable(manifest.model_class)} ({printable(version.flavour)}), from {printable(version.source)}, "
              f"sha256 {printable(version.hash)}")
    con.print(f"  registered {when(version.created_at)} by {printable(version.created_by or '?')}"
              + (f": {printable(version.description)}" if version.description else ""))
    if manifest.signature is not None:
        sig = Table(title="signature", title_justify="left", header_style="bold")
        for col in ("input", "type", "nullable"):
            sig.add_column(col)
        for c in manifest.signature.inputs:
            sig.add_row(printable(c.name), printable(c.type), "yes" if c.nullable else "no")
        con.print(sig)
    con.print("  requires " + printable(", ".join(f"{k} {v}" for k, v in manifest.requirements.items())))
    for v in verdicts:
        state = "[green]passed[/]" if v.passed else "[red]failed[/]"
        compared = f" against {v.baseline_alias} version {v.baseline_version}" if v.baseline_alias and v.baseline_version else ""
        con.print(f"  verdict {printable(v.id[:8])} {state} {when(v.created_at)}{printable(compared)}")


def _version(registry: Registry, spec: str) -> Any:
    """The registered version ``spec`` names (NAME@ALIAS, NAME/VERSION or models:/…), through the one model-URI parser."""
    from modelcycle.errors import InvalidInputError
    from modelcycle.registry.uri import NAME_RE

    if NAME_RE.match(spec):
        raise InvalidInputError(f"{spec!r} names a model, not one of its versions; give {spec}/VERSION or {spec}@ALIAS")
    _, version = registry.resolve(spec, local=False)
    if version is None:
        raise InvalidInputError(f"{spec!r} is not a registered model version; give NAME@ALIAS, NAME/VERSION or models:/…")
    return version


@app.command("history")
@errors
def history(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """The audit log of a model's aliases: who moved which alias, when, from which version to which, and why."""
    events = _registry().history(name, alias)
    if as_json:
        print_json([_event_json(e) for e in events])
        return
    from rich.table import Table

    if not events:
        console().print(f"{printable(name)}'s aliases have never moved.")
        return
    table = Table(title=f"{printable(name)}: alias history", header_style="bold")
    for col in ("#", "when", "alias", "action", "from", "to", "by", "verdict", "reason"):
        table.add_column(col)
    for e in events:
        action = printable(e.action) + (" [red](forced)[/]" if e.forced else "")
        table.add_row(str(e.id), when(e.at), printable(e.alias), action, str(e.from_version or "—"), str(e.to_version or "—"),
                      printable(e.actor), printable((e.verdict_id or "—")[:8]), printable(e.reason or ""))
    console().print(table)


@app.command("register")
@errors
def register(
    uri: Annotated[str, typer.Argument(help="runs:/<run_id>/model")],
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a logged model as the next version of NAME."""
    version = _registry().register_model(uri, name, description)
    if as_json:
        print_json(_version_json(version))
        return
    console().print(f"registered [bold]{printable(version.name)}[/] version [bold]{version.version}[/] from {printable(version.source)}")


@app.command("promote")
@errors
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.", min=1)],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to move.")] = "champion",
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why, for the audit log.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote without a passing verdict (recorded as forced).")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Move NAME@ALIAS to VERSION; the version's latest stored verdict must have passed (unless --force)."""
    event = _registry().promote(name, version, alias, None, force, reason)
    if as_json:
        print_json(_event_json(event))
        return
    console().print(f"{printable(name)}@{printable(alias)}: {event.from_version or '—'} → [bold]{event.to_version}[/]"
                    + (" [red](forced)[/]" if event.forced else ""))


@app.command("rollback")
@errors
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to move back.")] = "champion",
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why, for the audit log.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Move NAME@ALIAS back to the version it had before its latest move."""
    event = _registry().rollback(name, alias, reason)
    if as_json:
        print_json(_event_json(event))
        return
    console().print(f"{printable(name)}@{printable(alias)}: {event.from_version} → [bold]{event.to_version}[/] (rolled back)")


def _read_table(path: Path) -> Any:
    import pandas as pd

    from modelcycle.errors import InvalidInputError

    if not path.is_file():
        raise InvalidInputError(f"{str(path)!r} is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as e:
        raise InvalidInputError(f"cannot read {path.name}: {e}") from None
    raise InvalidInputError(f"{path.name}: give a .csv, .tsv or .parquet file")


@app.command("validate")
@errors
def validate(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The candidate: NAME@ALIAS, NAME/VERSION, models:/…, or NAME then VERSION.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled test data (.csv or .parquet).")],
    policy: Annotated[Path, typer.Option("--policy", help="Policy YAML (thresholds, improvement, slices, latency, data validation).")],
    number: Annotated[int | None, typer.Argument(metavar="[VERSION]", help="The candidate's version, after a NAME.", min=1)] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Label column (default: the policy's target, else y).")] = None,
    promote_to: Annotated[str | None, typer.Option("--promote", help="Promote to this alias when the verdict passes.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the verdict and evaluation report here.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a model version against a policy on test data; exit code 1 when it fails. The verdict is stored."""
    from modelcycle.errors import InvalidInputError
    from modelcycle.evaluation import Policy
    from modelcycle.registry.fluent import get_registry, validate_model

    rules = Policy.load(policy)  # the local inputs first: a broken file is named before the registry is asked
    frame = _read_table(data)
    registry = get_registry()  # the default client: settings from the environment
    if number is not None:
        from modelcycle.registry.uri import check_model_name

        model = f"models:/{check_model_name(model)}/{number}"
    candidate = _version(registry, model)
    name, version = candidate.name, candidate.version
    label = target or rules.target
    if label not in frame.columns:
        which = "which --target names" if target else "the policy's target, or y when it names none; name the label with --target COLUMN"
        raise InvalidInputError(f"{data.name} has no label column {label!r} ({which}); its columns: {', '.join(map(str, frame.columns))}")
    verdict = validate_model(candidate.uri, frame, rules, target)
    event, refused = None, None
    if promote_to and verdict.passed:
        from modelcycle.errors import ModelcycleError

        try:
            event = registry.promote(name, version, promote_to, verdict)
        except ModelcycleError as e:  # the verdict is stored and shown all the same; the refusal is said after it
            refused = e
    if html is not None:
        verdict.to_html(html)
    if as_json:
        print_json({**verdict.to_dict(), "promoted": _event_json(event) if event else None,
                    **({"promotion_refused": str(refused)} if refused is not None else {})})
    else:
        from rich.table import Table

        table = Table(title=f"{printable(name)}/{version} against {printable(policy.name)}"
                      + (f" ({printable(verdict.baseline)})" if verdict.baseline else ""),
                      header_style="bold")
        for col in ("rule", "result", "expected", "evidence"):
            table.add_column(col, overflow="fold")
        for r in verdict.rules:
            table.add_row(printable(r.rule), "[green]pass[/]" if r.passed else "[bold red]FAIL[/]", printable(r.expected), printable(r.detail))
        con = console()
        con.print(table)
        con.print(f"verdict {printable(verdict.id[:8])}: " + ("[bold green]PASSED[/]" if verdict.passed else "[bold red]FAILED[/]"))
        if event is not None:
            con.print(f"{printable(name)}@{printable(promote_to)}: {event.from_version or '—'} → [bold]{event.to_version}[/]")
        elif refused is not None:
            con.print(f"{printable(name)}@{printable(promote_to)} was not moved: [bold red]{printable(str(refused))}[/]")
        elif promote_to:
            con.print(f"{printable(name)}@{printable(promote_to)} was not moved.")
    if not verdict.passed or refused is not None:
        raise typer.Exit(1)


