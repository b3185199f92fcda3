"""What every autologger shares: the patch table, the outermost-call guard, and logging params and histories."""

from __future__ import annotations

import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelcycle.errors import ModelcycleWarning

__all__ = ["log_history", "log_params", "logged_call", "options", "param_text", "patch", "unpatch_all"]

_patched: list[tuple[Any, str, Any]] = []  # (owner, attribute, original), in the order they were patched
_state = threading.local()  # depth: > 0 inside a logged call of this thread
options: dict[str, Any] = {"log_datasets": True}
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def patch(owner: Any, attr: str, wrap: Callable[[Any], Any]) -> None:
    """Replace ``owner.attr`` (a class's own attribute, or a module's) by ``wrap(original)``, once."""
    original = vars(owner)[attr]
    if hasattr(original, "__modelcycle_original__"):
        return
    wrapped = wrap(original)
    wrapped.__modelcycle_original__ = original
    _patched.append((owner, attr, original))
    setattr(owner, attr, wrapped)


def unpatch_all() -> None:
    """Put back every original, last patched first."""
    for owner, attr, original in reversed(_patched):
        setattr(owner, attr, original)
    _patched.clear()


def logged_call(name: str, call: Callable[[], Any], log: Callable[[Any, Any, float], None]) -> Any:
    """Run ``call`` and ``log(run, result, seconds)`` it: in the active run, or in a run of its own named ``name``.

    Only the outermost patched call of a thread is logged; the calls it makes (a Pipeline's steps,
    a grid search's candidates, a subclass's ``super().fit``, the ``train`` behind XGBoost's
    ``fit``) run as they are.
    """
    if getattr(_state, "depth", 0) > 0:
        return call()
    from modelcycle.tracking.fluent import get_client

    def quietly(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as e:  # the store unreachable or busy: the fit goes on, unrecorded
            warnings.warn(f"autolog could not {what}: {e}", ModelcycleWarning, stacklevel=4)
            return None

    _state.depth = 1
    started = None
    try:
        client = quietly("reach the tracking store", get_client)
        run = quietly("read the active run", client.active_run) if client is not None else None
        if run is None and client is not None:
            run = started = quietly("start a run", lambda: client.start_run(name=name))
        start = time.perf_counter()
        try:
            result = call()
        except BaseException:
            if started is not None:
                exc = sys.exc_info()
                quietly("end its run", lambda: started.__exit__(*exc))
                started = None
            raise
        if run is not None:
            try:
                log(run, result, time.perf_counter() - start)
            except Exception as e:  # recording must never fail a fit that worked
                warnings.warn(f"autolog could not record this fit: {e}", ModelcycleWarning, stacklevel=3)
        return result
    finally:
        _state.depth = 0
        if started is not None:
            quietly("end its run", started.end)


def param_text(value: Any) -> str:
    """A param value as text, at most 500 characters."""
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


def log_params(run: Any, params: Mapping[str, str]) -> None:
    """Log ``params``, leaving out (with a warning) those the run already has with another value."""
    fresh = {k: v for k, v in params.items() if run._params.get(k, v) == v}
    if len(fresh) < len(params):
        warnings.warn("autolog: some params differ from those already in this run; they were not logged again",
                      ModelcycleWarning, stacklevel=6)
    run.log_params(fresh)


def metric_key(name: str) -> str:
    """A library's metric name as a valid key: ``valid-ndcg@5`` → ``valid-ndcg_at_5``."""
    return _BAD_KEY_CHARS.sub("_", name.replace("@", "_at_")).strip("/ ") or "metric"


def log_history(run: Any, results: Mapping[str, Mapping[str, Iterable[Any]]]) -> None:
    """Log ``{data set: {metric: [value per iteration]}}`` as metrics ``<data set>-<metric>``, step = iteration."""
    for data_name, metrics in results.items():
        for metric, values in metrics.items():
            key = metric_key(f"{data_name}-{metric}")
            for step, value in enumerate(values):
                run.log_metric(key, value, step=step)
