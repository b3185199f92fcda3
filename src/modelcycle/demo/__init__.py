"""`modelcycle demo`: the closed loop (``loop``), and the Level 0 tracked sweep (``level0``)."""

from __future__ import annotations

__all__ = ["main"]


def main(level0: bool = False) -> None:
    """Run the closed-loop demo (or, with ``level0``, the tracked notebook-style sweep).

    Raises:
        MissingDependencyError: a library the demo uses is not installed (``pip install 'modelcycle[demo]'``).
    """
    from modelcycle._deps import OPTIONAL, install_command, require
    from modelcycle.errors import MissingDependencyError

    # checked before anything is written or started: the loop trains scikit-learn models and serves them; all that is
    # missing is named at once
    missing: list[str] = []
    for module in ("sklearn", "skops.io", *(() if level0 else ("fastapi", "uvicorn", "prometheus_client"))):
        try:
            require(module, "modelcycle demo", extra="demo")
        except MissingDependencyError as e:
            name = OPTIONAL.get(str(e.module).split(".", 1)[0], (str(e.module),))[0]
            if name not in missing:
                missing.append(name)
    if missing:
        raise MissingDependencyError(f"modelcycle demo needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
                                     f"{install_command('demo')}", module=missing[0], extra="demo")
    if level0:
        from modelcycle.demo.level0 import main as sweep

        sweep()
        return
    from modelcycle.demo.loop import main as loop

    loop()  # DemoFailed (the loop did not close) is reported by the command line, with exit code 1
