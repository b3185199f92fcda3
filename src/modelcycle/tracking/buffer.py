"""Asynchronous, batched logging: calls append to in-memory queues that one thread flushes.

Appending is a ``deque.append`` (atomic under the GIL), so a log call never waits on disk.
The flusher writes everything queued in one transaction every ``flush_interval`` seconds,
sooner when much is queued, and sends the heartbeats of live runs. A caller that logs far
faster than the store can write is slowed down (it flushes itself) instead of filling memory; while the store
cannot take them (a server out of reach), at most ``max_pending`` points wait in memory: the log call that would
queue more waits for the store and then raises one clear error, and nothing already logged is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from modelcycle.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    StoreRefusedError,
)
from modelcycle.store.metadata.base import MetadataStore, WriteBatch

__all__ = ["LogBuffer"]

log = logging.getLogger("modelcycle")

_PARTS = ("runs", "metrics", "params", "tags", "artifacts", "inputs", "updates")
WAKE_AT = 50_000  # queued metric points that wake the flusher early
HARD_LIMIT = 1_000_000  # queued points beyond which the caller flushes itself


def _refused(e: BaseException) -> bool:
    """The store answered and will never take this write (sending it again cannot help), as opposed to a store out of
    reach or busy, which will take it later, or a token the server no longer knows (said once, at the run's end)."""
    return isinstance(e, StoreRefusedError | NotFoundError | PermissionDeniedError | ConflictError | InvalidInputError)


class LogBuffer:
    """Queues of pending writes and the thread that flushes them.

    Args:
        store: where batches go.
        flush_interval: seconds between flushes.
        heartbeat_interval: seconds between heartbeats of the runs ``live_runs`` returns.
        live_runs: the ids of the runs that should send heartbeats.
        max_pending: metric points kept in memory while the store cannot take them.

    Example:
        >>> import tempfile
        >>> from modelcycle.store import open_metadata_store
        >>> store = open_metadata_store(f"sqlite:///{tempfile.mkdtemp()}/m.db")
        >>> buffer = LogBuffer(store, flush_interval=1.0, heartbeat_interval=10.0, live_runs=list)
        >>> buffer.pending(), buffer.flush()
        (0, None)
    """

    def __init__(
        self,
        store: MetadataStore,
        flush_interval: float,
        heartbeat_interval: float,
        live_runs: Callable[[], Iterable[str]],
        max_pending: int = HARD_LIMIT,
    ):
        self.store = store
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.live_runs = live_runs
        self.runs: deque[Any] = deque()
        self.metrics: deque[tuple[str, str, float, int, float]] = deque()
        self.params: deque[tuple[str, str, str]] = deque()
        self.tags: deque[tuple[str, str, str]] = deque()
        self.artifacts: deque[tuple[str, str, str, int, float]] = deque()
        self.inputs: deque[tuple[str, Any]] = deque()
        self.updates: deque[tuple[str, dict[str, Any]]] = deque()
        self._retry: WriteBatch | None = None
        self._held = 0  # metric points in the batch kept for a retry
        self.max_pending = max_pending
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = time.time()
        self.last_error: BaseException | None = None
        self.dropped = 0  # values the store refused for good (their run deleted meanwhile, a role taken away)
        self.refused_runs: set[str] = set()  # runs whose later values are dropped without a word

    # --- producer side ----------------------------------------------------------------
    def add_metric(self, row: tuple[str, str, float, int, float]) -> None:
        self.metrics.append(row)
        n = len(self.metrics)
        if n >= WAKE_AT or n + self._held >= self.max_pending:
            if n + self._held >= self.max_pending:
                self._flush_full(n + self._held)
            else:
                self._wake.set()

    def _flush_full(self, waiting: int) -> None:
        """The caller writes what is queued itself; a store that cannot take it is one clear error."""
        try:
            self.flush()
        except StoreError as e:
            raise StoreError(f"{waiting:,} logged values are waiting to be written and the store cannot take them: {e}. They are "
                             "kept in memory and written once it answers (at the next flush or the run's end); until then "
                             "each log call that would queue more waits for it and raises this.") from None

    def ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="modelcycle-flusher", daemon=True)
            self._thread.start()

    # --- consumer side ----------------------------------------------------------------
    @staticmethod
    def _drain(queue: deque[Any]) -> list[Any]:
        n = len(queue)
        pop = queue.popleft
        return [pop() for _ in range(n)]

    def _take(self) -> WriteBatch:
        batch = WriteBatch(
            runs=self._drain(self.runs),
            metrics=self._drain(self.metrics),
            params=self._drain(self.params),
            tags=self._drain(self.tags),
            artifacts=self._drain(self.artifacts),
            inputs=self._drain(self.inputs),
            updates=self._drain(self.updates),
        )
        if self._retry is not None:
            old, self._retry = self._retry, None
            batch = WriteBatch(
                runs=old.runs + batch.runs,
                metrics=old.metrics + batch.metrics,
                params=old.params + batch.params,
                tags=old.tags + batch.tags,
                artifacts=old.artifacts + batch.artifacts,
                inputs=old.inputs + batch.inputs,
                updates=old.updates + batch.updates,
            )
        return batch

    def pending(self) -> int:
        return len(self.runs) + len(self.metrics) + len(self.params) + len(self.tags) + len(self.artifacts) + len(
            self.inputs) + len(self.updates) + (len(self._retry) if self._retry else 0)

    def flush(self) -> None:
        """Write everything queued so far; raises if the store cannot take it (then nothing is dropped: it is sent
        again at the next flush), or if it refuses some run's values for good (those are dropped, the rest written)."""
        with self._flush_lock:
            batch = self._take()
            if self.refused_runs and batch:
                batch = self._without_refused(batch)
            if not batch:
                return
            try:
                self.store.write(batch)
            except BaseException as e:
                if not _refused(e):
                    self._retry = batch  # kept for the next attempt
                    self._held = len(batch.metrics)
                    raise
                self._write_each_run(batch)
            self._held = 0

    def _without_refused(self, batch: WriteBatch) -> WriteBatch:
        """``batch`` without the values of runs the store refused for good (said once, when it first refused)."""
        refused, kept = self.refused_runs, WriteBatch()
        for name in _PARTS:
            rows = getattr(batch, name)
            keep = [row for row in rows if (row.id if name == "runs" else row[0]) not in refused]
            self.dropped += len(rows) - len(keep)
            setattr(kept, name, keep)
        return kept

    def _write_each_run(self, batch: WriteBatch) -> None:
        """``batch`` run by run, after the store refused it for good: a run deleted meanwhile (or one the user may no
        longer write) loses its values, with one warning, and blocks nobody else's; what the store cannot take now
        is kept for the next flush."""
        groups: dict[str, WriteBatch] = {}
        for name in _PARTS:
            for row in getattr(batch, name):
                run_id = row.id if name == "runs" else row[0]
                getattr(groups.setdefault(run_id, WriteBatch()), name).append(row)
        later: list[WriteBatch] = []
        refused: BaseException | None = None
        for run_id, part in groups.items():
            try:
                self.store.write(part)
            except BaseException as e:
                if not _refused(e):
                    later.append(part)
                    continue
                refused = e
                self.dropped += len(part)
                self.refused_runs.add(run_id)
                log.warning("modelcycle stops writing run %s: the store refuses its values for good (%s). The run was "
                            "deleted meanwhile, or may no longer be written by this user; its %d value(s) waiting and every "
                            "later one are dropped", run_id, e, len(part))
        if later:
            self._retry = WriteBatch(**{name: [row for part in later for row in getattr(part, name)] for name in _PARTS})
            self._held = len(self._retry.metrics)
        if refused is not None:
            raise refused

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(max(0.01, min(self.flush_interval, self.heartbeat_interval)))
            self._wake.clear()
            try:
                self.flush()
                self.last_error = None
            except Exception as e:  # keep the thread alive; the run's end reports it
                if self.last_error is None and not _refused(e):  # a refusal was said when its values were dropped
                    log.warning("modelcycle could not write logged values yet (will retry): %s", e)
                self.last_error = e
            now = time.time()
            if now - self._last_heartbeat >= self.heartbeat_interval:
                self._last_heartbeat = now
                try:
                    ids = list(self.live_runs())
                    if ids:
                        self.store.heartbeat(ids, now)
                except Exception as e:
                    log.warning("modelcycle heartbeat failed: %s", e)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def reset_after_fork(self) -> None:
        """In a forked child: the parent flushes its own queues; start empty with no thread."""
        for queue in (self.runs, self.metrics, self.params, self.tags, self.artifacts, self.inputs, self.updates):
            queue.clear()
        self._retry = None
        self._held = 0
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
