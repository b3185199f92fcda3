"""Module-level functions (``mc.log_metric`` …): thin delegates to one default Client."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.tracking.client import Client

if TYPE_CHECKING:
    import pandas as pd

    from modelcycle.entities import Experiment, LoggedModel, Run, RunStatus
    from modelcycle.tracking.run import ActiveRun

__all__ = [
    "active_run",
    "download_artifacts",
    "end_run",
    "flush",
    "get_client",
    "get_metric_history",
    "get_run",
    "list_experiments",
    "log_artifact",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "search_runs",
    "seed_everything",
    "set_client",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]

_default: Client | None = None
_lock = threading.Lock()


def get_client() -> Client:
    """The default Client, created from the environment on first use."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Client()
    return _default


def set_client(client: Client | None) -> Client | None:
    """Replace the default Client (None: create a fresh one from the environment next time).

    The previous client is closed: its live runs end and its queue is flushed.
    """
    global _default
    with _lock:
        old, _default = _default, client
    if old is not None and old is not client:
        old.close()
    return old


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: Any = None,
) -> ActiveRun:
    """Start a run: ``with mc.start_run(experiment="churn") as run: ...``. See ``Client.start_run``."""
    return get_client().start_run(experiment, name, params, tags, parent)


def end_run(status: RunStatus | str = "FINISHED") -> None:
    get_client().end_run(status)


def active_run() -> ActiveRun | None:
    return get_client().active_run()


def set_experiment(name: str) -> Experiment:
    return get_client().set_experiment(name)


def log_param(key: str, value: Any) -> None:
    get_client().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    get_client().log_params(params)


def log_metric(key: str, value: Any, step: int | None = None, timestamp: float | None = None) -> None:
    """Queue one metric point on the active run; never waits on disk."""
    (_default or get_client()).log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None) -> None:
    get_client().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    get_client().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    get_client().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], name: str | None = None) -> str:
    return get_client().log_artifact(local_path, name)


def log_text(text: str, name: str) -> str:
    return get_client().log_text(text, name)


def log_dict(data: Any, name: str) -> str:
    return get_client().log_dict(data, name)


def log_figure(figure: Any, name: str) -> str:
    return get_client().log_figure(figure, name)


def log_table(table: Any, name: str) -> str:
    return get_client().log_table(table, name)


def log_dataset(data: Any, name: str = "dataset", role: str = "input", profile: bool = True) -> str:
    """Record a dataset's fingerprint, size, schema and (by default) profile on the active run."""
    return get_client().log_dataset(data, name, role, profile)


def log_model(model: Any, name: str = "model", **options: Any) -> LoggedModel:
    """Store ``model`` as a safe package in the active run; ``.uri`` of the result loads or registers it.

    Options: ``input_example``, ``signature``, ``reference_data``, ``allow_pickle``,
    ``trusted_types``, ``artifacts``, ``flavour``, ``init_kwargs``, ``metadata`` (see
    :func:`modelcycle.models.save_model`).
    """
    return get_client().log_model(model, name, **options)


def get_run(run_id: str) -> Run:
    return get_client().get_run(run_id)


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    limit: int | None = 100,
    *,
    output: str = "frame",
) -> pd.DataFrame | list[Run]:
    """Find runs as a DataFrame (``output="list"``: as ``Run`` records, without pandas). See ``Client.search_runs``."""
    return get_client().search_runs(experiment, filter, order_by, limit, output=output)


def get_metric_history(run_id: str, key: str) -> pd.DataFrame:
    return get_client().get_metric_history(run_id, key)


def list_experiments() -> list[Experiment]:
    return get_client().list_experiments()


def download_artifacts(run_id: str, name: str | None = None, dst: str | os.PathLike[str] | None = None) -> Path:
    return get_client().download_artifacts(run_id, name, dst)


def flush() -> None:
    """Make everything logged so far durable now."""
    get_client().flush()


def seed_everything(seed: int | None = None) -> int:
    """Seed random, NumPy and PyTorch (if installed) and record the seed on the runs of this process."""
    from modelcycle.tracking.seeding import seed_everything as _seed

    value, _ = _seed(seed)
    get_client().seed(value)
    return value
