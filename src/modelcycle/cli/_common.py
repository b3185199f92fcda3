"""Helpers shared by the commands: the client, consoles, JSON output and one-line errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from modelcycle.errors import ModelcycleError

if TYPE_CHECKING:
    from rich.console import Console

    from modelcycle.tracking.client import Client

F = TypeVar("F", bound=Callable[..., Any])

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts instead of tables.")


def client() -> Client:
    """A client built from the environment (the edges build settings and pass them down)."""
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client

    return Client(Settings.from_env())


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def fail(message: str) -> typer.Exit:
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def errors(fn: F) -> F:
    """Turn a ModelcycleError into one plain line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelcycleError as e:
            from rich.markup import escape

            raise fail(escape(str(e).splitlines()[0] if str(e) else type(e).__name__)) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default, allow_nan=True) + "\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "value"):
        return obj.value
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def when(ts: float | None, short: bool = False) -> str:
    if ts is None:
        return "—"
    dt = datetime.fromtimestamp(ts)
    if short:
        return dt.strftime("%m-%d %H:%M" if dt.year == datetime.now().year else "%Y-%m-%d")
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def number(value: Any, digits: int = 6) -> str:
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return "—" if value is None else str(value)


STATUS_STYLE = {"RUNNING": "cyan", "FINISHED": "green", "FAILED": "red", "KILLED": "yellow", "LOST": "magenta"}


def status(value: str) -> str:
    return f"[{STATUS_STYLE.get(value, 'white')}]{value}[/]"
