"""The prediction log's files: Parquet under ``<home>/predictions/model=<name>/date=<YYYY-MM-DD>/``,
labels under ``<home>/labels/…``; written whole (temporary name, fsync, rename), read by time range.

A file is named ``part-<ns>-<random>.parquet`` where ``<ns>`` is when it was written: every row in
it is older than that, which lets readers pick a time range's files from their names alone.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInputError

__all__ = [
    "LogFile",
    "append_labels",
    "check_file",
    "compact",
    "find_predictions",
    "label_files",
    "list_files",
    "model_dir",
    "read_labelled",
    "read_labels",
    "read_log",
    "write_atomic",
]

LOG_COLUMNS = ("predicted_at", "version", "prediction", "request_id", "row")  # read_labelled's own columns
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$")


def model_dir(root: Path, kind: str, model: str) -> Path:
    if not _SAFE.match(model):
        raise InvalidInputError(f"{model!r} is not a valid model name")
    return root / kind / f"model={model}"


# A log file holds a request id (16+ random bytes, which no codec shrinks) per row, so a real file has far
# fewer rows than bytes, and its codecs shrink it a few times at most. A footer that promises more is a
# decompression or run-length bomb: it is refused before a page of it is read.
ROWS_PER_BYTE = 1
EXPANSION = 1000


def check_file(path: str | os.PathLike[str]) -> None:
    """Refuse a log file whose footer promises more rows or bytes than its size allows.

    Raises:
        InvalidInputError: the file is not Parquet, or would expand beyond the bounds above.
    """
    import stat

    import pyarrow as pa
    import pyarrow.parquet as pq

    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise InvalidInputError(f"{path} is not a regular file; move it out of the log folder")
    size = st.st_size
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise InvalidInputError(f"{path} is not a readable Parquet file ({str(e)[:200]}); move it out of the log "
                                "folder (it was not written by modelcycle, or it is damaged)") from None
    expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if meta.num_rows > ROWS_PER_BYTE * size or expanded > EXPANSION * size:
        raise InvalidInputError(f"{path} promises {meta.num_rows:,} rows and {expanded:,} bytes from a "
                                f"{size:,}-byte file; refusing to read it (a log file is never compressed that "
                                "much: it is damaged or crafted). Move it out of the log folder.")


def _read_file(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    check_file(path)
    return pq.read_table(path, columns=list(columns) if columns else None)


def write_atomic(frame: Any, folder: Path, written_ns: int | None = None, tag: str = "") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{written_ns or time.time_ns()}-{uuid.uuid4().hex[:8]}{tag}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    return folder / name


class LogFile:
    """One published file of the log: its path, when it was written (ns since the epoch) and its size.

    A merged (compacted) file holds what files written from ``first_ns`` to ``written_ns`` held; for
    any other file the two are equal.
    """

    __slots__ = ("first_ns", "path", "size", "written_ns")

    def __init__(self, path: Path, written_ns: int, size: int, first_ns: int | None = None):
        self.path, self.written_ns, self.size = path, written_ns, size
        self.first_ns = written_ns if first_ns is None else first_ns


def list_files(root: str | os.PathLike[str], kind: str, model: str, start: float | None = None,
               end: float | None = None) -> list[LogFile]:
    """Published files of ``model`` written in ``[start, end)`` (seconds since the epoch; a merged file when
    the span it covers overlaps it), oldest first, read from the folder listing only; temporary files of a
    writer still at work are left out."""
    folder = model_dir(Path(root), kind, model)
    if not folder.is_dir():
        return []
    first = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d") if start is not None else None
    last = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d") if end is not None else None
    lo = int(start * 1e9) if start is not None else None
    hi = int(end * 1e9) if end is not None else None
    out: list[LogFile] = []
    for day in sorted(os.scandir(folder), key=lambda e: e.name):
        if not day.name.startswith("date=") or not day.is_dir():
            continue
        value = day.name[5:]
        if (first is not None and value < first) or (last is not None and value > last):
            continue
        found: list[tuple[int, int, os.DirEntry[str]]] = []
        for entry in os.scandir(day.path):
            span = _span(entry.name)
            if span is not None:
                found.append((*span, entry))
        merged = [(lo_ns, hi_ns, e.name) for lo_ns, hi_ns, e in found if lo_ns != hi_ns]
        for lo_ns, written, entry in found:
            if merged and any(m_lo <= lo_ns and written <= m_hi and name != entry.name for m_lo, m_hi, name in merged):
                continue  # merged into a compacted file (a compaction that stopped before deleting it)
            if (lo is not None and written < lo) or (hi is not None and lo_ns >= hi):
                continue
            out.append(LogFile(Path(entry.path), written, entry.stat().st_size, lo_ns))
    out.sort(key=lambda f: (f.written_ns, f.path.name))
    return out


def _span(name: str) -> tuple[int, int] | None:
    """``part-<ns>-<random>.parquet`` → (ns, ns); ``part-<last ns>-compact<first ns>.parquet`` → (first, last)."""
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return None
    head, _, rest = name[5:-8].partition("-")
    try:
        written = int(head)
        return (int(rest[7:]), written) if rest.startswith("compact") else (written, written)
    except ValueError:
        return None


def compact(root: str | os.PathLike[str], kind: str, model: str, start: float, end: float, min_files: int = 2) -> int:
    """Merge the files of ``model`` written in ``[start, end)`` into one file per date folder; returns how many were merged.

    The merged file is published before the originals are deleted, and is named after the span it
    covers, so readers skip any original it holds: a compaction stopped at any point loses and doubles nothing.
    """
    import fcntl

    import pyarrow as pa
    import pyarrow.parquet as pq

    files = list_files(root, kind, model, start, end)
    by_folder: dict[Path, list[LogFile]] = {}
    for f in files:
        by_folder.setdefault(f.path.parent, []).append(f)
    merged = 0
    for folder, group in by_folder.items():
        if len(group) < min_files:
            continue
        with open(folder / ".compact.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one compaction per folder at a time (several server workers)
            group = [f for f in group if f.path.exists()]
            if len(group) < min_files:
                continue
            first_ns = min(f.first_ns for f in group)
            last_ns = max(f.written_ns for f in group)
            table = pa.concat_tables([_read_file(f.path) for f in group], promote_options="default")
            name = f"part-{last_ns}-compact{first_ns}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp, row_group_size=256_000)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, folder / name)
            for f in group:
                if f.path.name != name:
                    try:
                        f.path.unlink()
                    except FileNotFoundError:
                        pass
            merged += len(group)
    return merged


def _read(root: Path, kind: str, model: str, start: Any, end: Any) -> Any:
    import pandas as pd

    start_ts, end_ts = _timestamp(start), _timestamp(end)
    for attempt in range(3):  # a file merged by a compaction between listing and reading: list again
        try:
            frames = [_read_file(f.path).to_pandas() for f in list_files(root, kind, model)
                      if (start_ts is None or f.written_ns >= start_ts.value) and (end_ts is None or _day(f) <= end_ts)]
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    if not frames:
        return pd.DataFrame({"request_id": pd.Series(dtype=str), "time": pd.Series(dtype="datetime64[us, UTC]")})
    out = pd.concat(frames, ignore_index=True, sort=False)
    if start_ts is not None:
        out = out[out["time"] >= start_ts]
    if end_ts is not None:
        out = out[out["time"] < end_ts]
    return out.sort_values(["time", "request_id"], kind="stable").reset_index(drop=True)


def _day(f: LogFile) -> Any:
    import pandas as pd

    return pd.Timestamp(f.path.parent.name[5:], tz="UTC")


def _timestamp(value: Any) -> Any:
    """A time given as epoch seconds (a number), a datetime or ISO text, as a UTC timestamp (None stays None)."""
    import pandas as pd

    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return pd.Timestamp(float(value), unit="s", tz="UTC")
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(f"{value!r} is not a time; give epoch seconds, a datetime or ISO text such as 2026-11-27T10:00") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts


def read_log(root: str | os.PathLike[str], model: str, start: Any = None, end: Any = None) -> Any:
    """The logged predictions of ``model`` between ``start`` (inclusive) and ``end`` (exclusive), as a DataFrame."""
    return _read(Path(root), "predictions", model, start, end)


def append_labels(root: str | os.PathLike[str], model: str | None, request_ids: Sequence[str], labels: Iterable[Any],
                 rows: Sequence[int] | None = None) -> int:
    """Store ground truth for earlier predictions; returns how many labels were stored.

    Without ``model`` the labels are kept for every model (joined by request id).
    """
    import pandas as pd

    ids = [str(r) for r in request_ids]
    values = list(labels)
    if len(ids) != len(values):
        raise InvalidInputError(f"{len(ids)} request ids but {len(values)} labels; give one label per request id (for a request of several "
                                "rows, repeat its id once per row and give rows=[0, 1, ...], the position of each label's row in its request)")
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
    if rows is not None:
        bad = [r for r in rows if isinstance(r, bool) or not isinstance(r, int) or r < 0]
        if bad:
            raise InvalidInputError(f"row numbers are a row's position in its request (0, 1, …), not {bad[0]!r}; no label was stored")
    import math

    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise InvalidInputError("labels must be finite numbers or text, not NaN or infinity; no label was stored")
    when = find_predictions(root, model, ids)
    unknown = [i for i in dict.fromkeys(ids) if i not in when]
    if unknown:
        where = f"the prediction log of {model!r}" if model else "the prediction log"
        raise InvalidInputError(
            f"{len(unknown)} request id(s) are not in {where} (e.g. {', '.join(repr(u) for u in unknown[:3])}); labels join "
            "logged predictions by the X-Request-ID the server answered with. No label was stored.")
    frame = pd.DataFrame({"request_id": ids, "row": list(rows) if rows is not None else [0] * len(ids), "label": values,
                          "time": pd.Timestamp(datetime.now(tz=UTC)), "model": model or ""})
    folder = model_dir(Path(root), "labels", model) if model else Path(root) / "labels" / "unassigned"
    # the file's name says when the labelled predictions were made, so monitoring knows which windows it changes
    span = f"-t{int(min(when.values()))}-{int(max(when.values())) + 1}"
    write_atomic(frame, folder / f"date={frame['time'].iloc[0].strftime('%Y-%m-%d')}", tag=span)
    return len(ids)


def find_predictions(root: str | os.PathLike[str], model: str | None, request_ids: Sequence[str], chunk: int = 64) -> dict[str, float]:
    """When each of ``request_ids`` was predicted (epoch seconds), searching the log newest first and
    stopping once all are found (labels usually follow their predictions closely); missing ids are left out."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    base = Path(root) / "predictions"
    models = [model] if model else [p.name[6:] for p in base.glob("model=*")] if base.is_dir() else []
    files = sorted((f for m in models for f in list_files(root, "predictions", m)), key=lambda f: -f.written_ns)
    wanted = set(request_ids)
    found: dict[str, float] = {}
    for i in range(0, len(files), chunk):
        if not wanted:
            break
        for f in files[i:i + chunk]:
            check_file(f.path)
        table = ds.dataset([str(f.path) for f in files[i:i + chunk]], format="parquet").to_table(
            columns=["request_id", "time"], filter=pc.field("request_id").isin(list(wanted)))
        for rid, at in zip(table.column("request_id").to_pylist(), table.column("time").to_pylist(), strict=True):
            found[rid] = min(found.get(rid, at.timestamp()), at.timestamp())
        wanted -= set(found)
    return found


def label_files(root: str | os.PathLike[str], model: str) -> list[tuple[str, float, float]]:
    """The label files that concern ``model`` (its own and those given for any model), each with the span
    of prediction times it labels (``-inf, inf`` for a file that does not say)."""
    names = [f.path.name for f in list_files(root, "labels", model)]
    shared = Path(root) / "labels" / "unassigned"
    if shared.is_dir():
        names += sorted(p.name for p in shared.glob("date=*/part-*.parquet"))
    out = []
    for name in names:
        _, _, tail = name[:-8].rpartition("-t")
        lo, _, hi = tail.partition("-")
        try:
            out.append((name, float(lo), float(hi)))
        except ValueError:
            out.append((name, float("-inf"), float("inf")))
    return out


def read_labels(root: str | os.PathLike[str], model: str) -> Any:
    """Labels given for ``model`` and those given for any model, newest last."""
    import pandas as pd

    mine = _read(Path(root), "labels", model, None, None)
    shared_dir = Path(root) / "labels" / "unassigned"
    shared = [_read_file(f).to_pandas() for f in sorted(shared_dir.glob("date=*/part-*.parquet"))] if shared_dir.is_dir() else []
    return pd.concat([mine, *shared], ignore_index=True, sort=False) if shared else mine


def read_labelled(root: str | os.PathLike[str], model: str, start: Any, end: Any, target: str = "label") -> Any:
    """The champion's logged predictions of ``model`` in ``[start, end)`` that have a label, as a training table:
    the inputs by their own names, ``target``, ``predicted_at``, ``version``, ``prediction``, ``request_id`` and
    ``row``, oldest first (a row labelled twice: the later label)."""
    import pandas as pd

    if not isinstance(target, str) or not target or target.startswith("input."):
        raise InvalidInputError(f"target {target!r} must be a column name such as 'churned'")
    if target in LOG_COLUMNS:
        raise InvalidInputError(f"target {target!r} is the name of one of the log's own columns ({', '.join(LOG_COLUMNS)}); "
                                "give the label another name, such as 'label' or the outcome's name")
    predictions = read_log(root, model, start, end)
    if "role" in predictions.columns:
        predictions = predictions[predictions["role"] == "champion"]
    inputs = [c for c in predictions.columns if c.startswith("input.")]
    names = [c[len("input."):] for c in inputs]
    clash = {target, "predicted_at", "version", "prediction", "request_id", "row"} & set(names)
    if clash:
        raise InvalidInputError(f"the model's inputs include {', '.join(sorted(clash))}: give the label another name "
                                f"(target=...) than {target!r}" if target in clash else
                                f"the model's inputs include {', '.join(sorted(clash))}, which this table uses for the log's own columns")
    empty = pd.DataFrame({**{n: pd.Series(dtype=float) for n in names}, target: pd.Series(dtype=float),
                          "predicted_at": pd.Series(dtype="datetime64[us, UTC]"), "version": pd.Series(dtype="Int64"),
                          "prediction": pd.Series(dtype=float), "request_id": pd.Series(dtype=str), "row": pd.Series(dtype="int64")})
    if not len(predictions):
        return empty
    labels = read_labels(root, model)
    labels = labels[labels["label"].notna()] if len(labels) else labels
    if not len(labels):
        return empty
    labels = labels.drop_duplicates(["request_id", "row"], keep="last")[["request_id", "row", "label"]]
    keys = predictions.assign(request_id=predictions["request_id"].astype(str), row=predictions["row"].astype("int64"))
    joined = keys.merge(labels.assign(request_id=labels["request_id"].astype(str), row=labels["row"].astype("int64")),
                        on=["request_id", "row"], how="inner", validate="many_to_one")
    if not len(joined):
        return empty
    truth = joined["label"].to_numpy()
    out = joined[inputs].copy()
    out.columns = names
    out[target] = truth
    out["predicted_at"] = joined["time"].to_numpy()
    out["version"] = joined["version"].to_numpy()
    out["prediction"] = joined["prediction"].to_numpy() if "prediction" in joined.columns else None
    out["request_id"] = joined["request_id"].astype(str).to_numpy()
    out["row"] = joined["row"].astype("int64").to_numpy()
    return out.sort_values(["predicted_at", "request_id", "row"], kind="stable").reset_index(drop=True)
