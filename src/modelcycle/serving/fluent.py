"""``mc.read_predictions`` and ``mc.log_labels`` on the default Client's home."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from modelcycle.store.predictions import append_labels, read_log, settings_root
from modelcycle.tracking.fluent import get_client

__all__ = ["log_labels", "read_predictions"]


def read_predictions(model: str, start: Any = None, end: Any = None) -> Any:
    """Predictions a server logged for ``model`` from ``start`` (inclusive) to ``end`` (exclusive), one row per predicted row.

    Columns: request_id, row, time, model, version, role (champion or shadow), latency_ms, input.<column>,
    prediction and, for classifiers, proba.<class>.
    """
    return read_log(settings_root(get_client().settings), model, start, end)


def log_labels(request_ids: Sequence[str], labels: Iterable[Any], model: str | None = None, rows: Sequence[int] | None = None) -> int:
    """Record the true outcome of earlier predictions, by the request id the server returned (``X-Request-ID``)."""
    return append_labels(settings_root(get_client().settings), model, request_ids, labels, rows, wait=5.0)
