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
import threading
import time
from pathlib import Path
from typing import Any

from modelcycle.store.predictions import model_dir as _model_dir
from modelcycle.store.predictions import write_atomic as _write_atomic

__all__ = ["PredictionLog"]

def _rows(records: list[dict[str, Any]]) -> Any:
    """Request records as log rows, built in one pass per batch (in the writer thread)."""
    import numpy as np
    import pandas as pd

    arrays = [r.get("array") for r in records]
    if all(a is not None for a in arrays):  # all-number inputs: one concatenation instead of a concat of many small frames
        inputs = pd.DataFrame(np.concatenate(arrays), columns=["input." + str(c) for c in records[0]["inputs"].columns])
    else:
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

    def __init__(self, root: str | os.PathLike[str], flush_interval: float = 1.0, max_pending: int = 10_000,
                 compact_every: float = 3600.0):
        self.root = Path(root)
        # Publishing every second makes thousands of small files an hour; once an hour has closed, its files are
        # merged into one, so monitoring reads a day in a few dozen files.
        self.compact_every = compact_every
        self._next_compaction = (time.time() // compact_every + 1) * compact_every + 5 * flush_interval
        self._models: set[str] = set()
        self._compactor: threading.Thread | None = None
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
            days = batch["time"].dt.floor("D")  # vectorised; formatting every row's date would cost more than the write
            for (model, day), part in batch.groupby([batch["model"], days], sort=False):
                _write_atomic(part, _model_dir(self.root, "predictions", str(model)) / f"date={day:%Y-%m-%d}")
                self._models.add(str(model))
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
            if time.time() >= self._next_compaction:  # in its own thread: writing goes on every second meanwhile
                end = self._next_compaction - 5 * self.flush_interval
                self._next_compaction = end + self.compact_every + 5 * self.flush_interval
                self._compactor = threading.Thread(target=self._compact, args=(end,), name="modelcycle-log-compaction", daemon=True)
                self._compactor.start()
        self._write(self._drain())

    def _compact(self, end: float) -> None:
        from modelcycle.store.predictions import compact

        for model in sorted(self._models):
            try:
                compact(self.root, "predictions", model, end - self.compact_every, end)
            except Exception:  # a failed merge leaves the small files, which read the same
                self.failures += 1

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
        if self._compactor is not None:
            self._compactor.join(timeout=60)
