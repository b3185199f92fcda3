"""`modelcycle demo`: the closed loop (``loop``), and the Level 0 tracked sweep (``level0``)."""

from __future__ import annotations

__all__ = ["main"]


def main(level0: bool = False) -> None:
    """Run the closed-loop demo (or, with ``level0``, the tracked notebook-style sweep).

    Raises:
        MissingDependencyError: a library the demo uses is not installed (``pip install 'modelcycle[demo]'``).
    """
    from modelcycle._deps import require

    # checked before anything is written or started: the loop trains scikit-learn models and serves them
    for module in ("sklearn", "skops.io", *(() if level0 else ("fastapi", "uvicorn", "prometheus_client"))):
        require(module, "modelcycle demo", extra="demo")
    if level0:
        from modelcycle.demo.level0 import main as sweep

        sweep()
        return
    from modelcycle.demo.loop import main as loop

    loop()
