"""Shared by the benchmarks: the targets table, and running a workload in a fresh worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MARK = "BENCH-RESULT "


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


def run_worker(script: str, arg: str, cwd: Path) -> dict:
    """Run ``script --worker arg`` in a fresh interpreter (no MODELCYCLE_* settings leak in) and return the
    JSON it printed after MARK; a RuntimeError with the end of its output when it printed none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")} | {"PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, script, "--worker", arg], cwd=cwd, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
    raise RuntimeError(f"{arg[:60]} exited {proc.returncode}:\n{tail}")
