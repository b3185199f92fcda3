"""The prediction log: every answered prediction, written asynchronously in batches to Parquet.

Files live under ``<home>/predictions/model=<name>/date=<YYYY-MM-DD>/`` (labels under
``<home>/labels/…``), one row per predicted row: ``request_id``, ``row`` (its position in the
request), ``time``, ``model``, ``version``, ``role`` (``champion`` or ``shadow``), ``latency_ms``,
the inputs as ``input.<column>``, ``prediction`` and, for classifiers, ``proba.<class>``. Each
file is written to a temporary name and renamed, so a crash never leaves a torn file; a batch is
written at least every second.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInputError

__all__ = ["PredictionLog", "read_labels", "read_predictions", "write_labels"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$")


def _model_dir(root: Path, kind: str, model: str) -> Path:
    if not _SAFE.match(model):
        raise InvalidInputError(f"{model!r} is not a valid model name")
    return root / kind / f"model={model}"


def _write_atomic(frame: Any, folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    return folder / name


def _rows(records: list[dict[str, Any]]) -> Any:
    """Request records as log rows, built in one pass per batch (in the writer thread)."""
    import numpy as np
    import pandas as pd

    inputs = pd.concat([r["inputs"] for r in records], ignore_index=True, sort=False).add_prefix("input.")
    counts = [len(r["inputs"]) for r in records]

    def repeat(key: str) -> Any:
        return np.repeat(np.asarray([r[key] for r in records], dtype=object if key in ("request_id", "model", "role") else None), counts)

    head = pd.DataFrame({"request_id": repeat("request_id"), "row": np.concatenate([np.arange(n) for n in counts]),
                         "time": pd.to_datetime(repeat("time"), unit="s", utc=True), "model": repeat("model"),
                         "version": repeat("version"), "role": repeat("role"), "latency_ms": repeat("latency_ms")})
    frame = pd.concat([head, inputs], axis=1)
    predictions = [r["prediction"] for r in records]
    if all(p.ndim == 1 for p in predictions):
        frame["prediction"] = np.concatenate(predictions)
    else:
        frame["prediction"] = [row for p in predictions for row in (p if p.ndim > 1 else p[:, None])]
    if all(r["proba"] is not None for r in records) and len({tuple(r["classes"]) for r in records}) == 1:
        proba = np.concatenate([r["proba"] for r in records])
        for i, c in enumerate(records[0]["classes"] or range(proba.shape[1])):
            frame[f"proba.{c}"] = proba[:, i]
    return frame


class PredictionLog:
    """A bounded queue of prediction batches and the thread that writes them.

    ``add`` never blocks: when the queue is full the batch is dropped and counted (``dropped``),
    so a slow disk cannot slow the server down.
    """

    def __init__(self, root: str | os.PathLike[str], flush_interval: float = 1.0, max_pending: int = 10_000):
        self.root = Path(root)
        self.flush_interval = flush_interval
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="modelcycle-prediction-log", daemon=True)
        self._thread.start()

    def add(self, frame: Any) -> bool:
        """Queue one request's rows: a DataFrame with the log's columns, or a record the writer turns
        into rows (request_id, time, model, version, role, latency_ms, inputs, prediction, proba, classes).
        False when it had to be dropped."""
        try:
            with self._flushed:
                self._pending += 1
            self._queue.put_nowait(frame)
            return True
        except queue.Full:
            with self._flushed:
                self._pending -= 1
            self.dropped += len(frame["inputs"]) if isinstance(frame, dict) else len(frame)
            return False

    def _drain(self) -> list[Any]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _write(self, frames: list[Any]) -> None:
        import pandas as pd

        if not frames:
            return
        rows = sum(len(f["inputs"]) if isinstance(f, dict) else len(f) for f in frames)
        try:
            records = [f for f in frames if isinstance(f, dict)]
            ready = [f for f in frames if not isinstance(f, dict)]
            if records:
                groups: dict[tuple, list[dict[str, Any]]] = {}
                for r in records:  # rows of one shape together (a new model version may take other columns)
                    groups.setdefault((r["role"], tuple(r["inputs"].columns), r["proba"] is not None), []).append(r)
                ready += [_rows(g) for g in groups.values()]
            batch = pd.concat(ready, ignore_index=True, sort=False)
            for (model, day), part in batch.groupby([batch["model"], batch["time"].dt.strftime("%Y-%m-%d")], sort=False):
                _write_atomic(part, _model_dir(self.root, "predictions", str(model)) / f"date={day}")
            self.written += rows
        except Exception:  # a full disk, a bad value: counted, and the server keeps answering
            self.failures += 1
            self.dropped += rows
        finally:
            with self._flushed:
                self._pending -= len(frames)
                self._flushed.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_interval)
            self._write(self._drain())
        self._write(self._drain())

    def flush(self, timeout: float = 30.0) -> None:
        """Write everything queued so far (waits for the writer)."""
        self._write(self._drain())
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._pending > 0 and time.monotonic() < deadline:
                self._flushed.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._write(self._drain())


def _read(root: Path, kind: str, model: str, start: Any, end: Any) -> Any:
    import pandas as pd

    folder = _model_dir(root, kind, model)
    start_ts = pd.Timestamp(start, tz="UTC") if start is not None and pd.Timestamp(start).tzinfo is None else (
        pd.Timestamp(start) if start is not None else None)
    end_ts = pd.Timestamp(end, tz="UTC") if end is not None and pd.Timestamp(end).tzinfo is None else (
        pd.Timestamp(end) if end is not None else None)
    frames = []
    if folder.is_dir():
        for day in sorted(folder.glob("date=*")):
            day_value = day.name.split("=", 1)[1]
            if start_ts is not None and day_value < start_ts.strftime("%Y-%m-%d"):
                continue
            if end_ts is not None and day_value > end_ts.strftime("%Y-%m-%d"):
                continue
            for file in sorted(day.glob("part-*.parquet")):
                frames.append(pd.read_parquet(file))
    if not frames:
        return pd.DataFrame({"request_id": pd.Series(dtype=str), "time": pd.Series(dtype="datetime64[us, UTC]")})
    out = pd.concat(frames, ignore_index=True, sort=False)
    if start_ts is not None:
        out = out[out["time"] >= start_ts]
    if end_ts is not None:
        out = out[out["time"] < end_ts]
    return out.sort_values(["time", "request_id"], kind="stable").reset_index(drop=True)


def read_predictions(root: str | os.PathLike[str], model: str, start: Any = None, end: Any = None) -> Any:
    """The logged predictions of ``model`` between ``start`` (inclusive) and ``end`` (exclusive), as a DataFrame."""
    return _read(Path(root), "predictions", model, start, end)


def write_labels(root: str | os.PathLike[str], model: str | None, request_ids: Sequence[str], labels: Iterable[Any],
                 rows: Sequence[int] | None = None) -> int:
    """Store ground truth for earlier predictions; returns how many labels were stored.

    Without ``model`` the labels are kept for every model (joined by request id).
    """
    import pandas as pd

    ids = [str(r) for r in request_ids]
    values = list(labels)
    if len(ids) != len(values):
        raise InvalidInputError(f"{len(ids)} request ids but {len(values)} labels; give one label per request id")
    if not ids:
        raise InvalidInputError("no labels given")
    if any(not i for i in ids):
        raise InvalidInputError("request ids must not be empty; use the X-Request-ID the server returned")
    kinds = {type(v) for v in values if v is not None}
    if not kinds <= {bool, int, float, str} or (str in kinds and len(kinds) > 1):
        raise InvalidInputError("labels must be all numbers (or booleans) or all strings, one per request id; "
                                f"got {', '.join(sorted(k.__name__ for k in kinds))}")
    if kinds and kinds <= {bool, int, float} and len(kinds) > 1:
        values = [None if v is None else float(v) for v in values]
    if rows is not None and len(rows) != len(ids):
        raise InvalidInputError(f"{len(ids)} request ids but {len(rows)} row numbers")
    frame = pd.DataFrame({"request_id": ids, "row": list(rows) if rows is not None else [0] * len(ids), "label": values,
                          "time": pd.Timestamp(datetime.now(tz=UTC)), "model": model or ""})
    folder = _model_dir(Path(root), "labels", model) if model else Path(root) / "labels" / "unassigned"
    _write_atomic(frame, folder / f"date={frame['time'].iloc[0].strftime('%Y-%m-%d')}")
    return len(ids)


def read_labels(root: str | os.PathLike[str], model: str) -> Any:
    """Labels given for ``model`` and those given for any model, newest last."""
    import pandas as pd

    mine = _read(Path(root), "labels", model, None, None)
    shared_dir = Path(root) / "labels" / "unassigned"
    shared = [pd.read_parquet(f) for f in sorted(shared_dir.glob("date=*/part-*.parquet"))] if shared_dir.is_dir() else []
    return pd.concat([mine, *shared], ignore_index=True, sort=False) if shared else mine
