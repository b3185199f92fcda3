"""Production feedback as training data: the prediction log joined with the labels sent back for it.

Labels that arrive through ``POST /labels`` or ``mc.log_labels`` join the logged predictions by request
id and row. ``labelled_predictions`` gives those rows as a training table: the model's inputs under
their own names, the label under the target's name, and when each was predicted, by which version.
The agent hands the same table to the training pipeline (``data: {source: predictions}`` or
``data: {feedback: 30d}`` beside a folder), so a retrain after drift learns from the newest traffic.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInputError
from modelcycle.store.predictions import read_labelled, settings_root

__all__ = ["FEEDBACK_FILE", "count_new_labels", "export_feedback", "labelled_predictions"]

FEEDBACK_FILE = "labelled-predictions.parquet"


def labelled_predictions(model: str, start: Any = None, end: Any = None, *, target: str = "label", client: Any = None) -> Any:
    """The predictions the server made for ``model`` from ``start`` to ``end`` that have a label, as a training table.

    Columns: the model's inputs (by their own names), ``target`` (the label), ``predicted_at`` (UTC), ``version``
    (the version that answered), ``prediction``, ``request_id`` and ``row``. Only the champion's answers are
    used (a shadow's answers to the same request are the same rows). Oldest first; when a row was labelled
    twice, the later label counts.

    Args:
        model: the registered model's name, as the server logs it.
        start, end: times (datetime, ISO text or epoch seconds); None reads from the first or to the last.
        target: the name to give the label column (the training target's name).
        client: whose home holds the log (the default Client when None).

    Example:
        >>> import modelcycle as mc
        >>> recent = mc.labelled_predictions("churn", start="2026-11-01", target="churned")  # doctest: +SKIP
        >>> model.fit(recent[FEATURES], recent["churned"])                                    # doctest: +SKIP
    """
    from modelcycle.tracking.fluent import get_client

    client = client or get_client()
    return read_labelled(settings_root(client.settings), model, start, end, target)


def export_feedback(home: Any, model: str, folder: str | os.PathLike[str], seconds: float, target: str) -> tuple[Path, int]:
    """Write the labelled predictions of the last ``seconds`` to ``folder/labelled-predictions.parquet`` for a pipeline:
    the served model's inputs, ``target`` and ``predicted_at``.

    The file is replaced only when its rows changed, so an unchanged export keeps the pipeline's cache (its size and
    modification time are part of the cache key). Until the served model has labelled predictions the file has no
    rows, and no input columns either (a pipeline checks ``len(...)`` before selecting them). Returns the file and its
    number of rows.
    """
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    # what a pipeline may train on: the inputs, the target, and when each row was predicted (for a time split); the
    # answers the served model gave (and its version) are left out, so they cannot leak into the features
    frame = read_labelled(home, model, time.time() - seconds, None, target).drop(columns=["prediction", "request_id", "row", "version"])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FEEDBACK_FILE
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    if path.is_file() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
        return path, len(frame)
    tmp = folder / f".{FEEDBACK_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path, len(frame)


def count_new_labels(root: Any, model: str, since: float) -> int:
    """How many labels for ``model`` (or for any model) were stored after ``since`` (epoch seconds), from the files'
    footers only."""
    import pyarrow.parquet as pq

    from modelcycle.store.predictions import check_file, label_files, log_root

    where = log_root(root)
    total = 0
    for f in label_files(where, model, since=since):
        try:
            check_file(f.path, where)
            with where.fs.open(f.path, "rb") as stream:
                total += pq.read_metadata(stream).num_rows
        except (FileNotFoundError, InvalidInputError):
            continue  # merged by a compaction meanwhile, or refused: not counted
    return total
