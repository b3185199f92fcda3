"""Helpers shared by the commands: the client, consoles, JSON output and one-line errors."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperGroup

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


PIPED_WIDTH = 200  # columns of a table written to a file or a pipe, where no terminal says its width


def console(stderr: bool = False) -> Console:
    """The console of a command: a terminal's width, ``COLUMNS`` when set, else (a pipe, a file) ``PIPED_WIDTH``, so
    tables sent to ``less``, ``grep`` or a file are not cut to 80 columns."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out = Console(stderr=stderr, highlight=False, soft_wrap=False, width=PIPED_WIDTH)
    return out


# C0 and C1 control characters, and the Unicode ones that move the cursor or reorder text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(value: Any, markup: bool = True) -> str:
    """A stored name or value made safe to print: control characters shown as ``\\x1b``, ``\\n`` …,
    and rich markup escaped (pass ``markup=False`` where the text is printed with ``markup=False``).

    Names, params, tags and artifact paths come from whoever logged them: printed raw, an escape
    sequence could rewrite the terminal and a ``[tag]`` would be read as rich markup. ``--json``
    output needs none of this (JSON escapes control characters itself).

    Example:
        >>> print(printable("a\\x1b[31mb\\nc [red]d"))
        a\\x1b[31mb\\nc \\[red]d
        >>> printable("[bold]x[/]", markup=False)
        '[bold]x[/]'
    """
    text = value if isinstance(value, str) else str(value)
    text = _CONTROL.sub(_escape_control, text)
    if markup:
        from rich.markup import escape

        text = escape(text)
    return text


def fail(message: str) -> typer.Exit:
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def command_name() -> str:
    """The command being run, as a user types it: ``"modelcycle runs ls"``."""
    ctx = _current_context()
    if ctx is None:  # outside a command (main's net): read it from the command line
        return command_of(sys.argv[1:])
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["modelcycle", *reversed(names)])


def _click_module(name: str) -> Any:
    """A module of the Click that Typer runs on: recent Typer releases carry their own copy (``typer._click``)."""
    import importlib

    for prefix in ("typer._click", "click"):
        try:
            return importlib.import_module(f"{prefix}.{name}")
        except ImportError:
            continue
    raise ImportError(f"neither typer._click.{name} nor click.{name} can be imported")


class OneLineUsageErrors(TyperGroup):
    """The root command: a usage error (a missing argument, an unknown option, a bad value) is one line on stderr,
    ``error: Missing argument 'RUN'. Try 'modelcycle runs show --help'.``, and exit code 2, instead of a box.

    Subcommands are parsed inside the root's ``invoke``, so the root alone catches every command's usage errors.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    exceptions = _click_module("exceptions")
    try:
        yield
    except exceptions.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # the help was printed: that is the answer
            raise
        path = e.ctx.command_path if e.ctx is not None else command_name()
        fail(printable(f"{e.format_message().rstrip('.')}. Try '{path} --help'."))
        raise typer.Exit(2) from None


def _current_context() -> Any:
    import importlib

    for module in ("typer._click.globals", "click.globals"):  # recent Typer releases carry their own copy of Click
        try:
            ctx = importlib.import_module(module).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if ctx is not None:
            return ctx
    return None


def command_of(argv: list[str]) -> str:
    """``"modelcycle runs ls"`` from the command line's arguments: the subcommands, not their arguments."""
    import typer.main

    from modelcycle.cli import app

    words = ["modelcycle"]
    try:
        command: Any = typer.main.get_command(app)
    except Exception:  # only wording: the net that calls this must not fail
        return words[0]
    for arg in argv:
        commands = getattr(command, "commands", None)
        if not isinstance(commands, dict) or arg not in commands:
            break
        words.append(arg)
        command = commands[arg]
    return " ".join(words)


def missing_extra(error: ModuleNotFoundError, command: str) -> str | None:
    """The one line for an optional library that is not installed (None for any other missing module)."""
    from modelcycle._deps import missing_message

    return missing_message(error.name, command)


def error_line(error: BaseException) -> str:
    """An error's message as one printable line (markup escaped)."""
    text = str(error)
    return printable(text.splitlines()[0] if text.strip() else type(error).__name__)


def errors(fn: F) -> F:
    """Turn a ModelcycleError, or a missing optional library, into one plain line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelcycleError as e:
            raise fail(error_line(e)) from None
        except ModuleNotFoundError as e:  # a lazy import that did not go through modelcycle._deps.require
            message = missing_extra(e, command_name())
            if message is None:
                raise
            raise fail(printable(message)) from None

    return wrapper  # type: ignore[return-value]


def _finite(data: Any) -> Any:
    """The same data with NaN and ±infinity as null: strict JSON, which every parser reads."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def print_json(data: Any) -> None:
    """Strict JSON on stdout (NaN and ±infinity written as null)."""
    text = json.dumps(_finite(json.loads(json.dumps(data, default=_default, allow_nan=True))), indent=2, allow_nan=False)
    sys.stdout.write(text + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):  # the store's records (cycles, alerts, verdicts)
        return obj.to_dict()
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
