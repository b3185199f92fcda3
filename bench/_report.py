"""Shared output of the benchmarks: the targets table."""

from __future__ import annotations

from typing import Any


def print_targets(console: Any, targets: list[tuple[str, str, str]], caption: str | None = None) -> None:
    """A table of (target, measured, PASS/FAIL/n/a) rows."""
    from rich.table import Table

    table = Table(title="targets", title_justify="left", caption=caption)
    for col in ("target", "measured", "result"):
        table.add_column(col)
    for label, measured, result in targets:
        style = {"PASS": "green", "FAIL": "bold red"}.get(result, "dim")
        table.add_row(label, measured, f"[{style}]{result}[/]")
    console.print(table)
