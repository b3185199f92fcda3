"""``monitor``: the prediction log of a model, window by window, against what the model was trained on.

A window is summarised once it has closed (its end is ``settle`` seconds in the past, so the log
writer has published its rows): its findings and profile are stored, and later calls read them
back instead of the raw log. A window is summarised again only when the set of log files it was
made from changed (a late file) — and its live performance is recomputed when new labels arrived.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelcycle.errors import InvalidInputError, PermissionDeniedError
from modelcycle.monitoring.alerts import AlertRules, evaluate_rules
from modelcycle.monitoring.windows import Labels, fingerprint, parse_window, performance, read_window, summarise

__all__ = ["MonitorReport", "Window", "monitor"]


@dataclass
class Window:
    """One window's findings (see ``MonitorReport``)."""

    start: float
    end: float
    closed: bool
    stored: bool
    summary: dict[str, Any]

    @property
    def label(self) -> str:
        return datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def rows(self) -> int:
        return int(self.summary.get("rows", 0))

    @property
    def drift(self) -> dict[str, Any] | None:
        return self.summary.get("drift")

    @property
    def quality(self) -> dict[str, Any] | None:
        return self.summary.get("quality")

    @property
    def prediction_drift(self) -> dict[str, Any] | None:
        return self.summary.get("prediction_drift")

    @property
    def labelled(self) -> int:
        return int(self.summary.get("performance", {}).get("labelled", 0))

    @property
    def metrics(self) -> dict[str, float]:
        return self.summary.get("performance", {}).get("metrics", {})

    @property
    def version(self) -> int | None:
        versions = self.summary.get("versions") or {}
        return int(max(versions, key=versions.get)) if versions else None


@dataclass
class MonitorReport:
    """Per-window data quality, input drift, prediction drift, live performance and shadow agreement.

    Example:
        >>> report = MonitorReport(model="churn", window_seconds=3600)
        >>> report.to_frame().empty
        True
    """

    model: str
    window_seconds: int
    windows: list[Window] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    computed: int = 0  # windows read from the raw log in this call (the rest came from the store)

    def to_frame(self) -> Any:
        import pandas as pd

        rows = []
        for w in self.windows:
            drift, pdrift, shadow = w.drift or {}, w.prediction_drift or {}, w.summary.get("shadow") or {}
            rows.append({"start": pd.Timestamp(w.start, unit="s", tz="UTC"), "rows": w.rows, "version": w.version,
                         "quality_errors": (w.quality or {}).get("errors"), "drift_share": drift.get("share"),
                         "drifted": drift.get("dataset_drift"), "prediction_drift": pdrift.get("statistic"),
                         "labelled": w.labelled, **{k: v for k, v in w.metrics.items()},
                         "shadow_agreement": shadow.get("agreement"), "closed": w.closed})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "window_seconds": self.window_seconds, "alerts": self.alerts,
                "windows": [{"start": w.start, "end": w.end, "closed": w.closed, **w.summary} for w in self.windows]}

    def to_html(self, path: str | None = None) -> str:
        """A page with drift, prediction drift, performance and traffic over time, and the alerts."""
        from modelcycle._html import write
        from modelcycle.monitoring.report import monitor_html

        return write(monitor_html(self), path)


class _Ahead:
    """Fetches the files of the next window to be read in a thread of its own (only on an object store, where a
    request's wait is most of a small file's cost), so the fetch overlaps the summary of the window before."""

    def __init__(self, root: Any, paths: list[list[str]]):
        self.root, self.paths = root, paths
        self.pool = None if root.local or not any(paths) else _pool()
        self.pending: dict[int, Any] = {}
        self._submit(next((j for j in range(len(paths)) if paths[j]), None))

    def _submit(self, j: int | None) -> None:
        if self.pool is not None and j is not None and j not in self.pending:
            from modelcycle.store.predictions import fetch_files

            self.pending[j] = self.pool.submit(fetch_files, self.root, self.paths[j])

    def take(self, i: int) -> dict[str, bytes] | None:
        """Window ``i``'s fetched files (None when not fetched ahead, or when the fetch failed: the read says why),
        and the next window's files set fetching."""
        if self.pool is None:
            return None
        future = self.pending.pop(i, None)
        self._submit(next((j for j in range(i + 1, len(self.paths)) if self.paths[j]), None))
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # read again by the caller, which reports the problem
            return None

    def close(self) -> None:
        if self.pool is not None:
            for future in self.pending.values():
                future.cancel()
            self.pool.shutdown(wait=True)


def _pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1, thread_name_prefix="modelcycle-log-fetch")


def _settle(seconds: int) -> float:
    return float(min(60.0, max(2.0, seconds / 10)))


class _References:
    """Each served version's training profile and prediction profile, read from its package once."""

    def __init__(self, registry: Any, model: str):
        self.registry, self.model = registry, model
        self._cache: dict[int, tuple[Any, Any]] = {}

    def get(self, version: int | None) -> tuple[Any, Any]:
        if version is None or version < 0:
            return None, None
        if version not in self._cache:
            try:
                loaded = self.registry.package_profiles(self.model, version)
            except Exception:  # a version deleted since, or a package without profiles: nothing to compare with
                loaded = (None, None)
            self._cache[version] = loaded
        return self._cache[version]


def monitor(model: str, window: str | int = "1h", start: Any = None, end: Any = None, *, client: Any = None,
            rules: AlertRules | None = None, drift_method: str = "auto", drift_share: float | None = None,
            closed_only: bool = False, progress: Any = None, judge_since: float | None = None,
            judge_version: int | None = None) -> MonitorReport:
    """Summarise the prediction log of ``model`` in windows between ``start`` and ``end``.

    Args:
        model: the registered model's name (as the server logs it).
        window: the window length: ``1h``, ``30m``, ``1d`` or seconds.
        start, end: times (datetime, ISO text or epoch seconds); default: the first logged day until now.
        client: the Client whose store keeps the window summaries (the default Client when None).
        rules: alert rules to judge the latest windows with; alerts raised or resolved are in ``report.alerts``.
        drift_method: ``auto`` or a method of ``modelcycle.data.compare``.
        drift_share: share of drifted columns that makes a window drifted (default: the rules', else 0.5).
        closed_only: leave out the window still open (the controller judges closed windows only, read from the store).
        judge_since: epoch seconds; the rules judge only windows starting at or after it (the controller passes when
            the served version was promoted).
        judge_version: the version promoted at ``judge_since``: a window begun earlier whose predictions all came
            from it is judged too.

    Example:
        >>> import modelcycle as mc
        >>> report = mc.monitor("churn", window="1h")      # doctest: +SKIP
        >>> report.to_frame()[["start", "rows", "drift_share", "roc_auc"]]  # doctest: +SKIP
    """
    from modelcycle.registry.fluent import get_registry
    from modelcycle.store.predictions import label_spans, list_files, read_labels, settings_root
    from modelcycle.tracking.fluent import get_client

    client = client or get_client()
    registry = get_registry(client)
    store = client.store
    home = settings_root(client.settings)
    seconds = parse_window(window)
    share = drift_share if drift_share is not None else (rules.drift_share if rules and rules.drift_share else 0.5)
    now = time.time()
    settle = _settle(seconds)
    end_s = _epoch(end) if end is not None else now
    if closed_only:
        end_s = min(end_s, math.floor((now - settle) / seconds) * seconds)
    if start is not None:
        start_s = _epoch(start)
        if end_s < start_s:
            raise InvalidInputError(f"end ({end}) is before start ({start}); give a start before the end")
        files = list_files(home, "predictions", model, start=math.floor(start_s / seconds) * seconds, end=end_s + settle + 1)
    else:
        files = list_files(home, "predictions", model, end=end_s + settle + 1)
        start_s = min(min(f.first_ns for f in files) / 1e9 - settle - 1, end_s) if files else end_s  # a merged file: its first row
    first = math.floor(start_s / seconds) * seconds
    starts = [float(first + i * seconds) for i in range(max(0, math.ceil((end_s - first) / seconds)))]
    if len(starts) > 100_000:
        raise InvalidInputError(f"{len(starts):,} windows of {seconds} s between start and end; choose a longer window or a shorter span")
    spans = label_spans(home, model)
    loaded: list[Labels] = []

    def labels() -> Labels:  # read only when a window is summarised or its labels changed
        if not loaded:
            loaded.append(Labels(read_labels(home, model)))
        return loaded[0]

    stored = store.window_get(model, "champion", seconds, starts)
    references = _References(registry, model)
    report = MonitorReport(model=model, window_seconds=seconds)
    to_store: list[dict[str, Any]] = []
    by_window = _assign(files, starts, seconds, settle)

    def state(i: int) -> tuple[bool, str, str, bool]:
        """(closed, the files' key, the labels' key, whether the window's files are read) of window ``i``."""
        s, e = starts[i], starts[i] + seconds
        key = fingerprint([f.name for f in by_window.get(i, [])])
        labels_key = fingerprint([name for name, lo, hi in spans if lo < e and hi > s])  # the labels of this window's predictions
        row = stored.get(s)
        if row is not None and e + settle <= now and row["sources"] == key:
            return True, key, labels_key, bool(row["summary"].get("labels_key") != labels_key and row["summary"].get("rows"))
        return e + settle <= now, key, labels_key, bool(by_window.get(i))

    # On an object store the next window's files are fetched while this one is summarised.
    ahead = _Ahead(home, [[f.path for f in by_window.get(i, [])] if state(i)[3] else [] for i in range(len(starts))])
    try:
        for i, s in enumerate(starts):
            e = s + seconds
            mine = by_window.get(i, [])
            closed, key, labels_key, _ = state(i)
            row = stored.get(s)
            blobs = ahead.take(i)
            if row is not None and closed and row["sources"] == key:
                summary = row["summary"]
                if summary.get("labels_key") != labels_key and summary.get("rows"):
                    frame = read_window(home, mine, s, e, blobs=blobs)
                    summary["performance"] = performance(frame[frame["role"] == "champion"], labels())
                    summary["labels_key"] = labels_key
                    to_store.append({"start": s, "rows": row["rows"], "sources": key, "profile": row["profile"], "summary": summary,
                                     "computed_at": now})
                report.windows.append(Window(s, e, True, True, summary))
                continue
            if not mine:
                summary: dict[str, Any] = {"rows": 0, "versions": {}, "performance": {"labelled": 0, "metrics": {}}}
                profile_bytes = None
            else:
                try:
                    frame = read_window(home, mine, s, e, blobs=blobs)
                except FileNotFoundError:  # merged by a compaction since the listing: the merged file holds it
                    files = list_files(home, "predictions", model, start=first, end=end_s + settle + 1)
                    by_window = _assign(files, starts, seconds, settle)
                    mine = by_window.get(i, [])
                    key = fingerprint([f.name for f in mine])
                    frame = read_window(home, mine, s, e)
                champion_versions = frame.loc[frame["role"] == "champion", "version"]
                version = int(champion_versions.mode().iloc[0]) if len(champion_versions) else None
                reference, predicted = references.get(version)
                summary, window_profile = summarise(frame, reference, predicted, drift_method, share, labels())
                profile_bytes = window_profile.to_bytes(level=1) if window_profile is not None else None  # stored often, read rarely
                report.computed += 1
            summary["labels_key"] = labels_key
            if closed:
                to_store.append({"start": s, "rows": summary["rows"], "sources": key, "profile": profile_bytes, "summary": summary,
                                 "computed_at": now})
            report.windows.append(Window(s, e, closed, False, summary))
            if progress is not None:
                progress(i + 1, len(starts))
    finally:
        ahead.close()
    if to_store:
        try:
            store.window_put(model, "champion", seconds, to_store)
        except PermissionDeniedError:
            pass  # a reader of a team server: the summaries are answered, and kept by the next one who may write them
    if rules is not None:
        report.alerts = evaluate_rules(store, model, rules, report.windows, now, since=judge_since,
                                       version=judge_version)
    return report


def _assign(files: Sequence[Any], starts: Sequence[float], seconds: int, settle: float) -> dict[int, list[Any]]:
    """The files each window reads: a file written at ``t`` holds rows older than ``t`` and (the writer
    publishing at least every ``settle`` seconds) newer than ``t - settle`` — so a window ``[s, e)`` reads
    the files written in ``[s, e + settle)``."""
    if not starts:
        return {}
    first = starts[0]
    out: dict[int, list[Any]] = {}
    for f in files:  # a merged file spans the files it holds: from the first one's rows to the last one's
        lo = math.floor((f.first_ns / 1e9 - settle - first) / seconds)
        hi = math.floor((f.written_ns / 1e9 - first) / seconds)
        for i in range(max(lo, 0), min(hi, len(starts) - 1) + 1):
            out.setdefault(i, []).append(f)
    return out


def _epoch(value: Any) -> float:
    import pandas as pd

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{value!r} is not a time; give a datetime, ISO text such as 2026-11-27T10:00 or epoch seconds") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()
