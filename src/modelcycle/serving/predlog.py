"""The prediction log: every answered prediction, written asynchronously in batches to Parquet.

Files live in the artifact store under ``predictions/model=<name>/date=<YYYY-MM-DD>/`` (labels under
``labels/…``), one row per predicted row: ``request_id``, ``row`` (its position in the request), ``time``,
``model``, ``version``, ``role`` (``champion`` or ``shadow``), ``latency_ms``, the inputs as
``input.<column>``, ``prediction`` and, for classifiers, ``proba.<class>``. Each server process writes
under its own writer name, so replicas never touch each other's files. A file is published whole (a
crash never leaves a torn one); a batch is written at least every second.

On an object store, each batch goes to a local spool first and is shipped from there: a replica that
cannot reach the store keeps answering, keeps its log (up to ``max_spool_bytes``) and ships it when
the store is back, oldest first.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from modelcycle.errors import ConflictError, InvalidInputError
from modelcycle.store.predictions import log_root, model_dir, part_name
from modelcycle.store.predictions import parquet_bytes as _parquet_bytes

__all__ = ["PredictionLog"]

log = logging.getLogger("modelcycle.serving")

UPLOAD_TIMEOUT = 30.0  # seconds one upload of a spooled file may take
MAX_BATCH_BYTES = 256 << 20  # no batch of a second's predictions is larger: a bigger spooled file was not written here
_DATE = re.compile(r"^date=\d{4}-\d{2}-\d{2}$")

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

    Args:
        root: the log's root (the artifact store: a folder or an object-store URL).
        spool: a local folder for batches not yet shipped to a remote root (unused for a local one).
        max_spool_bytes: the spool's bound; batches beyond it are dropped and counted.
        writer: this process' name in file names (random when None).
    """

    def __init__(self, root: str | os.PathLike[str], flush_interval: float = 1.0, max_pending: int = 10_000,
                 compact_every: float = 3600.0, spool: str | os.PathLike[str] | None = None,
                 max_spool_bytes: int = 1 << 30, writer: str | None = None):
        self.root = log_root(root)
        self.writer = writer or uuid.uuid4().hex[:12]
        self.spool = None if self.root.local else Path(spool) if spool is not None else None
        if not self.root.local and self.spool is None:
            raise ValueError("a prediction log on an object store needs a local spool folder")
        self.max_spool_bytes = max_spool_bytes
        # Publishing every second makes thousands of small files an hour; once an hour has closed, each writer
        # merges its own files into one, so monitoring reads a day in a few dozen files.
        self.compact_every = compact_every
        self._next_compaction = (time.time() // compact_every + 1) * compact_every + 5 * flush_interval
        self._models: set[str] = set()
        self._compactor: threading.Thread | None = None
        self.flush_interval = flush_interval
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self.shipped = 0
        self.ship_failures = 0
        self.refused = 0  # files in the spool that this log did not write (moved to <spool>/refused/)
        self._ship_lock = threading.Lock()
        self._ship_after = 0.0
        self._ship_backoff = 0.0
        self._ship_error: str | None = None
        self.spool_bytes = self._spooled_bytes()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="modelcycle-prediction-log", daemon=True)
        self._thread.start()
        self._shipper: threading.Thread | None = None
        if self.spool is not None:  # its own thread: a store that hangs never holds up the writing of the spool
            self._shipper = threading.Thread(target=self._ship_loop, name="modelcycle-log-shipper", daemon=True)
            self._shipper.start()

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
                folder = f"{model_dir(self.root, 'predictions', str(model))}/date={day:%Y-%m-%d}"
                self._publish(folder, part_name(writer=self.writer), _parquet_bytes(part), len(part))
                self._models.add(str(model))
        except Exception:  # a full disk, a bad value: counted, and the server keeps answering
            self.failures += 1
            self.dropped += rows
        finally:
            with self._flushed:
                self._pending -= len(frames)
                self._flushed.notify_all()

    def _publish(self, folder: str, name: str, data: bytes, rows: int) -> None:
        if self.spool is None:
            self.root.write_bytes(f"{folder}/{name}", data)
            self.written += rows
            return
        if self.spool_bytes + len(data) > self.max_spool_bytes:
            self.dropped += rows  # the store has been out of reach long enough to fill the spool: counted
            return
        local = self.spool / self.root.relative(folder)
        local.mkdir(parents=True, exist_ok=True)
        tmp = local / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, local / name)
        self.spool_bytes += len(data)
        self.written += rows

    def _spooled(self) -> list[Path]:
        """The batches waiting in the spool: regular files under its ``predictions/`` folder, by name (their time)."""
        if self.spool is None or not (self.spool / "predictions").is_dir():
            return []
        return sorted(self.spool.glob("predictions/model=*/date=*/part-*.parquet"), key=lambda p: p.name)

    def _read_spooled(self, path: Path) -> bytes | None:
        """A spooled file's bytes, or None when it is not one this log wrote (a symlink, a FIFO, a device, a file larger
        than any batch, or one whose name is not a log file's): that one is moved aside to ``<spool>/refused/`` and
        counted, never shipped."""
        import stat

        from modelcycle.store.predictions import _SAFE, _span

        rel = path.relative_to(self.spool).parts  # ("predictions", "model=…", "date=…", "part-….parquet")
        ok_name = (len(rel) == 4 and rel[1].startswith("model=") and bool(_SAFE.match(rel[1][6:]))
                   and _DATE.match(rel[2]) is not None and _span(rel[3]) is not None)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # shipped by another process sharing the spool
        except OSError:  # a symlink (ELOOP) or unreadable
            self._refuse(path)
            return None
        try:
            st = os.fstat(fd)
            if not ok_name or not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BATCH_BYTES:
                self._refuse(path)
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read(MAX_BATCH_BYTES + 1)
        finally:
            os.close(fd)

    def _refuse(self, path: Path) -> None:
        self.refused += 1
        target = self.spool / "refused" / f"{time.time_ns()}-{path.name[:200]}"  # type: ignore[operator]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)  # moves a symlink itself, never what it points to
        except OSError:
            try:
                path.unlink()
            except OSError:
                pass

    def _spooled_bytes(self) -> int:
        total = 0
        for p in self._spooled():
            try:
                total += p.lstat().st_size
            except FileNotFoundError:
                pass
        return total

    def ship(self, force: bool = False) -> int:
        """Ship spooled files to the store, oldest first; returns how many. After a failure it waits (1 s, then
        doubling up to 30 s) before trying again, unless ``force``."""
        if self.spool is None or (not force and time.monotonic() < self._ship_after):
            return 0
        if not self._ship_lock.acquire(timeout=UPLOAD_TIMEOUT if force else 0):
            return 0  # another thread is shipping (or waiting on a store that does not answer)
        shipped = 0
        try:
            for path in self._spooled():
                rel = path.relative_to(self.spool).as_posix()
                data = self._read_spooled(path)
                if data is None:
                    continue
                try:
                    self._upload(self.root.join(rel), data)
                except (InvalidInputError, ConflictError) as e:  # refused for good: shipping it again cannot help
                    log.warning("the store refuses the prediction log file %s for good (%s); it is moved to %s and the "
                                "others are shipped", rel, str(e)[:300], self.spool / "refused")
                    self._refuse(path)
                    continue
                except Exception as e:
                    said = f"{type(e).__name__}: {e}"
                    if said != self._ship_error:  # said once per kind of failure, not once a second
                        log.warning("the prediction log cannot be shipped to the store yet (kept in the spool, %s bytes): %s",
                                    f"{self.spool_bytes:,}", said[:500])
                    self._ship_error = said
                    self.ship_failures += 1
                    self._ship_backoff = min(30.0, max(1.0, self._ship_backoff * 2))
                    self._ship_after = time.monotonic() + self._ship_backoff
                    break
                path.unlink(missing_ok=True)
                self.shipped += 1
                shipped += 1
            else:
                self._ship_backoff = 0.0
                if self._ship_error is not None and shipped:
                    log.warning("the prediction log is shipped again")
                    self._ship_error = None
            # from the folder itself: the processes of one server share the spool and ship each other's files
            self.spool_bytes = self._spooled_bytes()
        finally:
            self._ship_lock.release()
        return shipped

    def _upload(self, path: str, data: bytes) -> None:
        """One upload, given up after ``UPLOAD_TIMEOUT`` seconds (a store that accepts connections and never answers
        would otherwise hold the shipper for good); the file stays in the spool for the next try."""
        outcome: list[BaseException | None] = []

        def put() -> None:
            try:
                self.root.write_bytes(path, data)
                outcome.append(None)
            except BaseException as e:  # handed to the caller
                outcome.append(e)

        worker = threading.Thread(target=put, name="modelcycle-log-upload", daemon=True)
        worker.start()
        worker.join(UPLOAD_TIMEOUT)
        if not outcome:
            raise TimeoutError(f"an upload did not finish within {UPLOAD_TIMEOUT:g} s (the store is out of reach: stopped, "
                               "a network down, a wrong address; or it is too slow to answer)")
        if outcome[0] is not None:
            raise outcome[0]

    def _ship_loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.ship()

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

        if self.spool is not None and self._spooled():
            return  # files of the hour are still on their way: merged at the next hour
        for model in sorted(self._models):
            try:
                compact(self.root, "predictions", model, end - self.compact_every, end, writer=self.writer)
            except Exception:  # a failed merge leaves the small files, which read the same
                self.failures += 1

    def flush(self, timeout: float = 30.0, ship: bool = True) -> None:
        """Write everything queued so far (waits for the writer), and with ``ship`` try to ship the spool now (a
        request thread passes False: the shipper thread ships within a second, and a store that hangs must not
        hold the request)."""
        self._write(self._drain())
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._pending > 0 and time.monotonic() < deadline:
                self._flushed.wait(0.05)
        if ship:
            self.ship(force=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._shipper is not None:
            self._shipper.join(timeout=UPLOAD_TIMEOUT + 5)
        self._write(self._drain())
        self.ship(force=True)
        if self._compactor is not None:
            self._compactor.join(timeout=60)
