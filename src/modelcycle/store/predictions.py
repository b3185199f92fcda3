"""The prediction log's files: Parquet under ``<root>/predictions/model=<name>/date=<YYYY-MM-DD>/``, labels
under ``<root>/labels/…``, where the root is the artifact store (a local folder or an object-store URL), so
every replica, laptop and agent with the store's URI reads the same log.

A file is named ``part-<ns>-<writer>_<random>.parquet`` where ``<ns>`` is when it was written (every row in
it is older than that, which lets readers pick a time range's files from their names alone) and
``<writer>`` names the process that wrote it. Each writer merges its own files of a closed hour into
``part-<last ns>-compact<first ns>_<writer>.parquet``; readers skip the files a merged file holds. A file is
published whole: a temporary name, fsync and rename on a local disk; one PUT (atomic there) on an object
store.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle.errors import ArtifactError, ConfigurationError, InvalidInputError, ModelcycleError

__all__ = [
    "LogFile",
    "LogRoot",
    "append_labels",
    "check_file",
    "compact",
    "find_predictions",
    "label_files",
    "list_files",
    "log_root",
    "model_dir",
    "read_labelled",
    "read_labels",
    "read_log",
    "settings_root",
    "write_atomic",
]

LOG_COLUMNS = ("predicted_at", "version", "prediction", "request_id", "row")  # read_labelled's own columns
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$")
_WRITER = re.compile(r"^[a-z0-9]{1,32}$")
_DAY = re.compile(r"^date=\d{4}-\d{2}-\d{2}$")


def _store_error(e: BaseException) -> bool:
    """Whether ``e`` says the object store could not be reached or did not answer (a driver's own exception types)."""
    return isinstance(e, (OSError, TimeoutError)) or type(e).__module__.split(".")[0] in (
        "botocore", "aiobotocore", "aiohttp", "urllib3", "s3fs", "gcsfs", "adlfs", "requests")


@contextlib.contextmanager
def _reaching(uri: str, doing: str) -> Iterator[None]:
    """Errors of the object store's driver as one ``ArtifactError`` that says what could not be done."""
    try:
        yield
    except (FileNotFoundError, ModelcycleError):
        raise
    except Exception as e:
        if _store_error(e):
            from modelcycle.settings import redact

            raise ArtifactError(f"cannot {doing} the prediction log at {redact(uri)}: {type(e).__name__}: {str(e)[:300]}") from None
        raise


class LogRoot:
    """The folder or object-store prefix that holds the log, and the filesystem that reaches it.

    Example:
        >>> import tempfile
        >>> root = LogRoot(tempfile.mkdtemp())
        >>> root.local, root.join("predictions", "model=churn").endswith("/predictions/model=churn")
        (True, True)
    """

    def __init__(self, uri: str | os.PathLike[str], token: str | None = None, retry_for: float = 60.0):
        import fsspec

        text = os.fspath(uri)
        self.uri = text
        if text.startswith(("http://", "https://")):  # a modelcycle server's URL: the log through its /api/v1/logs routes
            from modelcycle.store._serverfs import ServerLogFileSystem

            self.fs, self.local, self.base = ServerLogFileSystem(text, token, retry_for), False, ""
            return
        try:
            self.fs, base = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as e:
            raise ConfigurationError(f"cannot open {text!r} for the prediction log: {e}; install the fsspec driver for "
                                     "this scheme (s3fs for s3://)") from None
        self.local = "file" in _protocols(self.fs)
        self.base = str(Path(base).resolve()) if self.local else base.rstrip("/")

    def join(self, *parts: str) -> str:
        return "/".join([self.base, *parts] if self.base else parts)

    def relative(self, path: str) -> str:
        """``path`` (made by ``join``) relative to the root: ``join(relative(p)) == p``."""
        return path[len(self.base) + 1:] if self.base else path

    @property
    def arrow_fs(self) -> Any:
        """The filesystem pyarrow reads through (None for a local folder: pyarrow's own, faster)."""
        return None if self.local else self.fs

    def listdir(self, path: str) -> list[tuple[str, int, bool]]:
        """(name, size, is a folder) of each entry in ``path``; empty when it does not exist."""
        if self.local:
            try:
                # a symbolic link is never followed: it could lead out of the log folder
                return [(e.name, e.stat(follow_symlinks=False).st_size if e.is_file(follow_symlinks=False) else 0,
                         e.is_dir(follow_symlinks=False)) for e in os.scandir(path) if not e.is_symlink()]
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            with _reaching(self.uri, "list"):
                entries = self.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return [(e["name"].rstrip("/").rsplit("/", 1)[-1], int(e.get("size") or 0), e.get("type") == "directory")
                for e in entries]

    def write_bytes(self, path: str, data: bytes, replace: bool = True) -> bool:
        """Publish ``data`` at ``path`` whole: a reader sees all of it or nothing. Without ``replace``, an entry already
        at ``path`` stays and False is returned (on a local folder atomically: a link of the new file, never over
        another; on an object store a look first)."""
        return self._publish(path, lambda f: f.write(data), lambda **mode: self.fs.pipe_file(path, data, **mode), replace)

    def write_file(self, path: str, source: str, replace: bool = True) -> bool:
        """``write_bytes`` with the bytes of the local file ``source``, copied without holding them in memory."""
        import shutil

        def copy(f: Any) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        return self._publish(path, copy, lambda **mode: self.fs.put_file(source, path, **mode), replace)

    def _publish(self, path: str, write: Any, put: Any, replace: bool) -> bool:
        if self.local:
            folder, _, name = path.rpartition("/")
            os.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:12]}.tmp"  # a new file of its own: never through a link planted there
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                if replace:
                    os.replace(tmp, path)
                    return True
                try:
                    os.link(tmp, path)
                    return True
                except FileExistsError:
                    return False
            finally:
                with contextlib.suppress(FileNotFoundError):  # moved into place, or linked there (or not) and left
                    os.unlink(tmp)
        with _reaching(self.uri, "write to"):
            if replace:
                put()  # one PUT (or one multipart upload): atomic on an object store
                return True
            if self.fs.exists(path):
                return False
            try:
                put(mode="create")  # a conditional PUT (If-None-Match): of two at once, one is refused
            except FileExistsError:
                return False
        return True

    def delete(self, path: str) -> None:
        try:
            with _reaching(self.uri, "delete from"):
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def __repr__(self) -> str:
        return f"LogRoot({self.uri!r})"


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


_ROOTS: dict[tuple[str, str | None, float], LogRoot] = {}
_ROOTS_LOCK = threading.Lock()


def log_root(root: str | os.PathLike[str] | LogRoot, token: str | None = None, retry_for: float = 60.0) -> LogRoot:
    """``root`` as a LogRoot (one per URI and token per process: an object store's client is reused). ``token`` is the
    one sent to a modelcycle server (``MODELCYCLE_TRACKING_TOKEN``'s when None)."""
    if isinstance(root, LogRoot):
        return root
    text = os.fspath(root)
    if token is None and text.startswith(("http://", "https://")):
        token = os.environ.get("MODELCYCLE_TRACKING_TOKEN") or None
    key = (text, token, retry_for)
    with _ROOTS_LOCK:
        found = _ROOTS.get(key)
        if found is None:
            if len(_ROOTS) > 64:
                _ROOTS.clear()
            found = _ROOTS[key] = LogRoot(text, token, retry_for)
        return found


def settings_root(settings: Any) -> LogRoot:
    """The log that ``settings`` name (``Settings.log_uri``), reached with their token when it is a server."""
    return log_root(settings.log_uri, settings.tracking_token, settings.busy_timeout)


def model_dir(root: str | os.PathLike[str] | LogRoot, kind: str, model: str) -> str:
    """The folder (or prefix) of ``model``'s files of ``kind`` (``predictions`` or ``labels``)."""
    if not _SAFE.match(model):
        raise InvalidInputError(f"{model!r} is not a valid model name")
    return log_root(root).join(kind, f"model={model}")


# A log file holds a request id (16+ random bytes, which no codec shrinks) per row, so a real file has far
# fewer rows than bytes, and its codecs shrink it a few times at most. A footer that promises more is a
# decompression or run-length bomb: it is refused before a page of it is read.
# A footer's sizes are the file's own claims, and dictionary encoding lets one long value stand for every row:
# readers therefore read text columns as dictionaries and expand them only when the text they hold fits
# EXPANSION times the files' size, and MAX_READ_BYTES in all.
ROWS_PER_BYTE = 1
EXPANSION = 1000
MAX_READ_BYTES = 4 << 30
MAX_ROW_GROUPS = 1_000  # a batch is one row group, a merged hour a few
MAX_COLUMNS = 20_000


def check_file(path: str | os.PathLike[str], root: str | os.PathLike[str] | LogRoot | None = None) -> int:
    """Refuse a log file whose footer promises more rows or bytes than its size allows; returns its size.

    Raises:
        InvalidInputError: the file is not Parquet, or would expand beyond the bounds above.
        FileNotFoundError: the file is gone (merged by a compaction since it was listed).
    """
    return _check(path, root)[0]


def _check(path: str | os.PathLike[str], root: str | os.PathLike[str] | LogRoot | None = None,
           data: bytes | None = None) -> tuple[int, Any, int]:
    """``check_file``, returning the file's size, its Arrow schema (of ``data``, the file's bytes, when given) and the
    bytes its fixed-width values take once read, by its footer."""
    import stat

    import pyarrow as pa
    import pyarrow.parquet as pq

    where = log_root(root) if root is not None else None
    path = os.fspath(path)
    if data is not None:
        size = len(data)
    elif where is None or where.local:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end; a link could lead anywhere
            raise InvalidInputError(f"{path} is not a regular file (a link, a FIFO or a device); move it out of the log folder")
        size = st.st_size
    else:
        with _reaching(where.uri, "read"):
            size = int(where.fs.size(path))
    try:
        if data is not None:
            meta = pq.read_metadata(pa.BufferReader(data))
        elif where is None or where.local:
            meta = pq.read_metadata(path)
        else:
            with _reaching(where.uri, "read"), where.fs.open(path, "rb") as f:
                meta = pq.read_metadata(f)
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
    if meta.num_row_groups > MAX_ROW_GROUPS or meta.num_columns > MAX_COLUMNS:
        raise InvalidInputError(f"{path} has {meta.num_row_groups:,} row groups of {meta.num_columns:,} columns; a log file has at "
                                f"most {MAX_ROW_GROUPS:,} and {MAX_COLUMNS:,} (it was not written by modelcycle). Move it out of "
                                "the log folder.")
    schema = meta.schema.to_arrow_schema()
    _check_columns(path, schema)
    fixed = meta.num_rows * sum(_width(f.type) for f in schema)  # what the fixed-width columns take once read
    fixed = max(fixed, _values_width(meta))  # lists: the values their column chunks say they hold
    if fixed > min(EXPANSION * max(size, 1), MAX_READ_BYTES):
        raise InvalidInputError(f"{path} has {meta.num_rows:,} rows of {len(schema)} columns that take {fixed:,} bytes once read, from a "
                                f"{size:,}-byte file; refusing to read it (it is damaged or crafted). Move it out of the log folder.")
    return size, schema, fixed


_PHYSICAL = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}


def _values_width(meta: Any) -> int:
    """Bytes the fixed-width values of every column chunk take once read, by the values each chunk says it holds (a
    list column holds many per row)."""
    total = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            chunk = group.column(j)
            total += chunk.num_values * _PHYSICAL.get(chunk.physical_type, 0)
    return total


def _width(ty: Any) -> int:
    """Bytes a value of a fixed-width type takes in memory (text and lists, whose size the file does not say: 0)."""
    try:
        return max(1, ty.bit_width // 8)
    except ValueError:
        return 0


_UTC = ("UTC", "Etc/UTC", "+00:00", "Z")


def _check_columns(path: str, schema: Any) -> None:
    """A log file has a text request_id and a UTC time in ns; a label file a text request_id and a label."""
    import pyarrow as pa

    def has(name: str, ok: Any) -> bool:
        i = schema.get_field_index(name)
        return i >= 0 and ok(schema.field(i).type)

    text = lambda ty: pa.types.is_string(ty) or pa.types.is_large_string(ty)  # noqa: E731
    if "/labels/" in path:
        good = has("request_id", text) and schema.get_field_index("label") >= 0
        want = "a text request_id and a label"
    else:
        good = has("request_id", text) and has("time", lambda ty: pa.types.is_timestamp(ty) and ty.tz in _UTC)
        want = "a text request_id and a time in UTC"
    if not good:
        raise InvalidInputError(f"{path} is not a file modelcycle wrote (it lacks {want}); move it out of the log folder")
    def plain_list(ty: Any) -> bool:
        return (pa.types.is_list(ty) or pa.types.is_large_list(ty) or pa.types.is_fixed_size_list(ty)) \
            and not pa.types.is_nested(ty.value_type)

    nested = [f.name for f in schema if pa.types.is_nested(f.type) and not plain_list(f.type)]
    if nested:
        raise InvalidInputError(f"{path} is not a file modelcycle wrote (its column {nested[0]!r} holds records, maps or lists of lists, "
                                "which the log never does); move it out of the log folder")
    number = lambda ty: pa.types.is_integer(ty) or pa.types.is_floating(ty)  # noqa: E731
    kinds = {"version": pa.types.is_integer, "row": pa.types.is_integer, "role": text, "model": text, "latency_ms": number}
    if "/labels/" in path:
        kinds = {"row": pa.types.is_integer, "time": pa.types.is_timestamp}
    wrong = [name for name, ok in kinds.items() if schema.get_field_index(name) >= 0 and not ok(schema.field(name).type)]
    if wrong:
        raise InvalidInputError(f"{path} is not a file modelcycle wrote (its column {wrong[0]!r} is of type {schema.field(wrong[0]).type}); "
                                "move it out of the log folder")


def _is_text(ty: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_binary(ty) or pa.types.is_large_binary(ty)


def read_parquet(root: str | os.PathLike[str] | LogRoot, paths: Sequence[str], columns: Sequence[str] | None = None,
                 filter: Any = None, blobs: dict[str, bytes] | None = None) -> Any:
    """The log files at ``paths`` (each checked first) as one Arrow table, columns joined by name, rows kept where
    ``filter`` (a dataset expression) holds.

    Text columns are read as dictionaries and expanded only once the text they stand for is known to fit the
    bounds above, so a file whose few bytes name one long value for a million rows is refused before it is
    expanded. ``blobs`` are files' bytes fetched ahead (``fetch_files``).

    Raises:
        InvalidInputError: a file is not a log file, or would expand beyond the bounds.
        FileNotFoundError: a file is gone (merged by a compaction since it was listed).
    """
    import pyarrow as pa

    try:
        with _reaching(log_root(root).uri, "read"):
            return _read_parquet(root, paths, columns, filter, blobs)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        shown = ", ".join(str(p) for p in list(paths)[:3]) + (" …" if len(paths) > 3 else "")
        raise InvalidInputError(f"the log files {shown} cannot be read together ({str(e)[:300]}): one of them was not written by "
                                "modelcycle or is damaged; move it out of the log folder") from None


def _read_parquet(root: str | os.PathLike[str] | LogRoot, paths: Sequence[str], columns: Sequence[str] | None,
                  filter: Any, blobs: dict[str, bytes] | None) -> Any:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    where = log_root(root)
    paths = list(paths)
    blobs = {p: blobs[p] for p in paths if p in blobs} if blobs else {}
    blobs.update(fetch_files(where, [p for p in paths if p not in blobs]))
    checked = [_check(p, where, blobs.get(p)) for p in paths]
    size = sum(n for n, _, _ in checked)
    schemas = [sc for _, sc, _ in checked]
    fixed = sum(f for _, _, f in checked)
    if fixed > MAX_READ_BYTES:  # each file may be within its bounds and all of them together not
        shown = ", ".join(str(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        raise InvalidInputError(f"{len(paths)} log file(s) ({shown}) hold {fixed:,} bytes of values once read, more than the "
                                f"{MAX_READ_BYTES:,} a read may take; ask for a shorter time range")
    fs = where.arrow_fs
    wanted = list(columns) if columns else None
    text = sorted({f.name for sc in schemas for f in sc if _is_text(f.type) and (wanted is None or f.name in wanted)})
    if not blobs and all(sc.equals(schemas[0]) for sc in schemas):  # one dataset over the files: read in parallel, in one call
        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=text))
        try:
            table = ds.dataset(paths, format=fmt, filesystem=fs).to_table(columns=wanted, filter=filter)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = None  # files that differ within: one by one, below
        if table is not None:
            return _expand([table], size, paths, text)[0]
    tables = []
    for p, sc in zip(paths, schemas, strict=True):  # one by one (from memory when fetched whole), columns joined
        names = set(sc.names)
        with (pa.BufferReader(blobs[p]) if p in blobs else fs.open(p, "rb") if fs is not None else pa.OSFile(p)) as source:
            one = pq.ParquetFile(source, read_dictionary=[c for c in text if c in names]).read(
                columns=[c for c in wanted if c in names] if wanted else None)
        tables.append(one.filter(filter) if filter is not None else one)
    tables = _expand(tables, size, paths, text)
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # the same column in other units (times in us and ns)
        return pa.concat_tables(tables, promote_options="permissive")


FETCH_WHOLE = 64 << 20
FETCH_BUDGET = 512 << 20


def fetch_files(root: str | os.PathLike[str] | LogRoot, paths: Sequence[str]) -> dict[str, bytes]:
    """The bytes of each remote file of ``paths`` up to ``FETCH_WHOLE`` (by its listed size; ``FETCH_BUDGET`` in all),
    fetched at once, one GET per file: an object store answers one request for a whole small file faster than the footer and column reads a
    reader would send. Nothing for a local folder."""
    where = log_root(root)
    if where.local or not paths:
        return {}
    with _reaching(where.uri, "read"):
        if len(paths) == 1:  # one request: its first FETCH_WHOLE + 1 bytes say whether it is whole
            head = where.fs.cat_file(paths[0], start=0, end=FETCH_WHOLE + 1)
            return {paths[0]: head} if len(head) <= FETCH_WHOLE else {}
        sizes = {e["name"]: int(e.get("size") or 0) for folder in {p.rsplit("/", 1)[0] for p in paths}
                 for e in where.fs.ls(folder, detail=True, refresh=True)}
        small, budget = [], FETCH_BUDGET
        for p in paths:
            n = sizes.get(p, FETCH_WHOLE + 1)
            if n <= FETCH_WHOLE and n <= budget:  # beyond the budget: read in ranges, as a big file is
                small.append(p)
                budget -= n
        got = where.fs.cat(small, on_error="return") if small else {}
    out: dict[str, bytes] = {}
    for p in small:
        value = got.get(p)
        if isinstance(value, FileNotFoundError) or value is None:
            raise FileNotFoundError(p)
        if isinstance(value, BaseException):
            from modelcycle.settings import redact

            raise ArtifactError(f"cannot read {p} from the prediction log at {redact(where.uri)}: {type(value).__name__}: {value}")
        if len(value) > FETCH_WHOLE:
            raise InvalidInputError(f"{p} grew past {FETCH_WHOLE:,} bytes while it was read; a log file is never rewritten: "
                                    "move it out of the log folder")
        out[p] = value
    return out


def measure(table: Any) -> int:
    """The bytes ``table`` takes in memory once its text columns read as dictionaries are turned back into text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for field, column in zip(table.schema, table.columns, strict=True):
        total += column.nbytes
        if pa.types.is_dictionary(field.type):
            for chunk in column.chunks:
                if len(chunk) and len(chunk.dictionary):
                    total += pc.sum(pc.take(pc.binary_length(chunk.dictionary), chunk.indices)).as_py() or 0
    return total


def _expand(tables: list[Any], size: int, paths: Sequence[str], text: Sequence[str]) -> list[Any]:
    """``tables`` with the text columns read as dictionaries turned back into text, once the text they stand for
    fits ``EXPANSION`` times ``size`` (and ``MAX_READ_BYTES``)."""
    import pyarrow as pa

    total = sum(measure(table) for table in tables)
    limit = min(EXPANSION * max(size, 1), MAX_READ_BYTES)
    if total > limit:
        shown = ", ".join(str(p) for p in list(paths)[:3]) + (" …" if len(paths) > 3 else "")
        raise InvalidInputError(f"{len(paths)} log file(s) of {size:,} bytes ({shown}) would expand to {total:,} bytes in memory, more "
                                f"than the {limit:,} allowed; a file is damaged or crafted (move it out of the log folder), or the "
                                "time range asked for is too long (ask for a shorter one)")
    out = []
    for table in tables:
        fields = [pa.field(f.name, f.type.value_type, f.nullable, f.metadata)
                  if pa.types.is_dictionary(f.type) and f.name in text else f for f in table.schema]
        out.append(table.cast(pa.schema(fields, metadata=table.schema.metadata)) if fields != list(table.schema) else table)
    return out


def read_files(root: str | os.PathLike[str] | LogRoot, paths: Sequence[str], columns: Sequence[str] | None = None) -> Any:
    """The files at ``paths`` (each checked first) as one Arrow table, columns joined by name."""
    return read_parquet(root, paths, columns)


def _read_file(root: LogRoot, path: str, columns: Sequence[str] | None = None) -> Any:
    return read_parquet(root, [path], columns)


def parquet_bytes(frame: Any, row_group_size: int | None = None) -> bytes:
    """A DataFrame or Arrow table as the bytes of one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue().to_pybytes()


def part_name(written_ns: int | None = None, writer: str = "", tag: str = "") -> str:
    """A new file's name: when it was written, by which writer, and a random part."""
    if writer and not _WRITER.match(writer):
        raise InvalidInputError(f"writer {writer!r} must be 1-32 lowercase letters and digits")
    random = uuid.uuid4().hex[:8]
    return f"part-{written_ns or time.time_ns()}-{writer + '_' if writer else ''}{random}{tag}.parquet"


def write_atomic(frame: Any, folder: str | os.PathLike[str], written_ns: int | None = None, tag: str = "",
                 root: str | os.PathLike[str] | LogRoot | None = None, writer: str = "") -> str:
    """Publish ``frame`` (a DataFrame or Arrow table) as a new file in ``folder`` (a path of ``root``, a local
    folder when no root is given); returns its path."""
    where = log_root(root) if root is not None else log_root("/")
    folder = os.fspath(folder).rstrip("/")
    path = f"{folder}/{part_name(written_ns, writer, tag)}"
    where.write_bytes(path, parquet_bytes(frame))
    return path


class LogFile:
    """One published file of the log: its path, when it was written (ns since the epoch), its size and writer.

    A merged (compacted) file holds what files written from ``first_ns`` to ``written_ns`` held; for
    any other file the two are equal.
    """

    __slots__ = ("first_ns", "path", "size", "writer", "written_ns")

    def __init__(self, path: str, written_ns: int, size: int, first_ns: int | None = None, writer: str = ""):
        self.path, self.written_ns, self.size, self.writer = path, written_ns, size, writer
        self.first_ns = written_ns if first_ns is None else first_ns

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f"LogFile({self.path!r})"


def list_files(root: str | os.PathLike[str] | LogRoot, kind: str, model: str, start: float | None = None,
               end: float | None = None, writer: str | None = None) -> list[LogFile]:
    """Published files of ``model`` written in ``[start, end)`` (seconds since the epoch; a merged file when
    the span it covers overlaps it), oldest first, read from the folder listing only; temporary files of a
    writer still at work are left out. ``writer`` keeps only that writer's files."""
    where = log_root(root)
    folder = model_dir(where, kind, model)
    first = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d") if start is not None else None
    last = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d") if end is not None else None
    out: list[LogFile] = []
    for day in _days(where, folder):
        if (first is not None and day[5:] < first) or (last is not None and day[5:] > last):
            continue
        out.extend(_day_files(where, kind, folder, day, start, end, writer))
    out.sort(key=lambda f: (f.written_ns, f.name))
    return out


def _days(where: LogRoot, folder: str) -> list[str]:
    """The date folders (``date=YYYY-MM-DD``) under ``folder``, oldest first; any other entry is never read."""
    return sorted(day for day, _, is_dir in where.listdir(folder) if is_dir and _DAY.match(day))


def _day_files(where: LogRoot, kind: str, folder: str, day: str, start: float | None = None, end: float | None = None,
               writer: str | None = None) -> list[LogFile]:
    """``list_files`` within one date folder."""
    try:
        day_ns = int(datetime.strptime(day[5:], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) * 1_000_000_000
    except ValueError:
        return []
    lo = int(start * 1e9) if start is not None else None
    hi = int(end * 1e9) if end is not None else None
    found: list[tuple[int, int, str, str, int]] = []
    for name, size, entry_is_dir in where.listdir(f"{folder}/{day}"):
        span = None if entry_is_dir else _span(name)
        if span is not None and (writer is None or span[2] == writer):
            lo_ns, hi_ns, who = span
            found.append((max(lo_ns, day_ns - 86_400_000_000_000), hi_ns, who, name, size))  # no span reaches back further
    # labels are never merged: a name that says "merged" hides nothing there
    merged = [(lo_ns, hi_ns, who, name) for lo_ns, hi_ns, who, name, _ in found if lo_ns != hi_ns] if kind == "predictions" else []
    out = []
    for lo_ns, written, who, name, size in found:
        if merged and any(m_lo <= lo_ns and written <= m_hi and m_who == who and m_name != name
                          for m_lo, m_hi, m_who, m_name in merged):
            continue  # merged into a compacted file (a compaction that stopped before deleting it)
        if (lo is not None and written < lo) or (hi is not None and lo_ns >= hi):
            continue
        out.append(LogFile(f"{folder}/{day}/{name}", written, size, lo_ns, who))
    return out


def _span(name: str) -> tuple[int, int, str] | None:
    """``part-<ns>-[<writer>_]<random>….parquet`` → (ns, ns, writer);
    ``part-<last ns>-compact<first ns>[_<writer>].parquet`` → (first, last, writer)."""
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return None
    head, _, rest = name[5:-8].partition("-")
    token = rest.partition("-")[0]
    try:
        written = int(head)
        if token.startswith("compact"):
            first, _, writer = token[7:].partition("_")
            return int(first), written, writer
        return written, written, token.partition("_")[0] if "_" in token else ""
    except ValueError:
        return None


def compact(root: str | os.PathLike[str] | LogRoot, kind: str, model: str, start: float, end: float, min_files: int = 2,
            writer: str = "") -> int:
    """Merge ``writer``'s files of ``model`` written in ``[start, end)`` into one file per date folder; returns how
    many were merged.

    Only the writer that made the files merges them, so writers never race. The merged file is published
    before the originals are deleted, and is named after the span it covers, so readers skip any original it
    holds: a compaction stopped at any point loses and doubles nothing.
    """
    where = log_root(root)
    files = list_files(where, kind, model, start, end, writer=writer)
    by_folder: dict[str, list[LogFile]] = {}
    for f in files:
        by_folder.setdefault(f.path.rsplit("/", 1)[0], []).append(f)
    merged = 0
    for folder, group in by_folder.items():
        if len(group) < min_files:
            continue
        first_ns = min(f.first_ns for f in group)
        last_ns = max(f.written_ns for f in group)
        table = read_files(where, [f.path for f in group])
        name = f"part-{last_ns}-compact{first_ns}{'_' + writer if writer else ''}.parquet"
        where.write_bytes(f"{folder}/{name}", parquet_bytes(table, row_group_size=256_000))
        for f in group:
            if f.name != name:
                where.delete(f.path)
        merged += len(group)
    return merged


def _read(root: LogRoot, kind: str, model: str, start: Any, end: Any) -> Any:
    import pandas as pd

    start_ts, end_ts = _timestamp(start), _timestamp(end)
    for attempt in range(3):  # a file merged by a compaction between listing and reading: list again
        try:
            frames, held = [], 0
            for f in list_files(root, kind, model):
                if (start_ts is None or f.written_ns >= start_ts.value) and (end_ts is None or _day(f) <= end_ts):
                    table = _read_file(root, f.path)
                    held += table.nbytes  # each file is within its bounds; together they must be too
                    if held > MAX_READ_BYTES:
                        raise InvalidInputError(f"the {kind} of {model} asked for hold more than {MAX_READ_BYTES:,} bytes "
                                                "of values once read; ask for a shorter time range")
                    frames.append(table.to_pandas())
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
    return out.sort_values([c for c in ("time", "request_id") if c in out.columns], kind="stable").reset_index(drop=True)


def _day(f: LogFile) -> Any:
    import pandas as pd

    return pd.Timestamp(f.path.rsplit("/", 2)[-2][5:], tz="UTC")


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


def read_log(root: str | os.PathLike[str] | LogRoot, model: str, start: Any = None, end: Any = None) -> Any:
    """The logged predictions of ``model`` between ``start`` (inclusive) and ``end`` (exclusive), as a DataFrame."""
    return _read(log_root(root), "predictions", model, start, end)


def append_labels(root: str | os.PathLike[str] | LogRoot, model: str | None, request_ids: Sequence[str], labels: Iterable[Any],
                 rows: Sequence[int] | None = None, writer: str = "", wait: float = 0.0) -> int:
    """Store ground truth for earlier predictions; returns how many labels were stored.

    Without ``model`` the labels are kept for every model (joined by request id). Request ids not in the log
    yet are looked for again for up to ``wait`` seconds: another replica publishes what it answered every
    second, so a label may arrive before the prediction it is for is in the shared log.
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
        bad = [r for r in rows if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < 2**31]
        if bad:
            raise InvalidInputError(f"row numbers are a row's position in its request (0, 1, …), not {bad[0]!r}; no label was stored")
    import math

    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**53 for v in values):
        raise InvalidInputError("labels must be numbers a float holds exactly (below 2**53 in size), or text; no label was stored")
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise InvalidInputError("labels must be finite numbers or text, not NaN or infinity; no label was stored")
    when = find_predictions(root, model, ids)
    unknown = [i for i in dict.fromkeys(ids) if i not in when]
    deadline = time.monotonic() + wait
    while unknown and time.monotonic() < deadline:
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        when.update(find_predictions(root, model, unknown))
        unknown = [i for i in unknown if i not in when]
    if unknown:
        where = f"the prediction log of {model!r}" if model else "the prediction log"
        raise InvalidInputError(
            f"{len(unknown)} request id(s) are not in {where} (e.g. {', '.join(repr(u) for u in unknown[:3])}); labels join "
            "logged predictions by the X-Request-ID the server answered with. A server publishes its log every second (and, "
            "when the store is out of its reach, once it is back): for predictions just made, send the labels again "
            "later. No label was stored.")
    frame = pd.DataFrame({"request_id": ids, "row": list(rows) if rows is not None else [0] * len(ids), "label": values,
                          "time": pd.Timestamp(datetime.now(tz=UTC)), "model": model or ""})
    where = log_root(root)
    folder = model_dir(where, "labels", model) if model else where.join("labels", "unassigned")
    # the file's name says when the labelled predictions were made, so monitoring knows which windows it changes
    span = f"-t{int(min(when.values()))}-{int(max(when.values())) + 1}"
    write_atomic(frame, f"{folder}/date={frame['time'].iloc[0].strftime('%Y-%m-%d')}", tag=span, root=where, writer=writer)
    return len(ids)


def logged_models(root: str | os.PathLike[str] | LogRoot, kind: str = "predictions") -> list[str]:
    """The models that have files of ``kind`` in the log."""
    where = log_root(root)
    return sorted(name[6:] for name, _, is_dir in where.listdir(where.join(kind))
                  if is_dir and name.startswith("model=") and _SAFE.match(name[6:]))


def find_predictions(root: str | os.PathLike[str] | LogRoot, model: str | None, request_ids: Sequence[str],
                     chunk: int = 64) -> dict[str, float]:
    """When each of ``request_ids`` was predicted (epoch seconds), searching the log newest first and
    stopping once all are found (labels usually follow their predictions closely); missing ids are left out."""

    where = log_root(root)
    models = [model] if model else logged_models(where)
    folders = {m: model_dir(where, "predictions", m) for m in models}
    days = sorted(((day, m) for m in models for day in _days(where, folders[m])), reverse=True)
    wanted = set(request_ids)
    found: dict[str, float] = {}
    for day, m in days:  # newest day first, each day's folder listed only when the days after it did not hold every id
        if not wanted:
            break
        files = sorted(_day_files(where, "predictions", folders[m], day), key=lambda f: -f.written_ns)
        for i in range(0, len(files), chunk):
            if wanted:
                _find(where, [f.path for f in files[i:i + chunk]], wanted, found)
    return found


def _find(where: LogRoot, paths: list[str], wanted: set[str], found: dict[str, float]) -> None:
    """Record in ``found`` when each of ``wanted`` that ``paths`` hold was predicted, and take it out of ``wanted``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted_ids = pc.field("request_id").isin(list(wanted))
    table = read_parquet(where, paths, ["request_id", "time"], filter=wanted_ids)
    if table.num_rows and table.schema.field("time").type != pa.timestamp("ns", "UTC"):
        table = table.cast(pa.schema([("request_id", table.schema.field("request_id").type), ("time", pa.timestamp("ns", "UTC"))]))
    for rid, at in zip(table.column("request_id").to_pylist(), table.column("time").to_pylist(), strict=True):
        if rid is not None and at is not None:  # a row without a time was never a prediction
            found[rid] = min(found.get(rid, at.timestamp()), at.timestamp())
    wanted -= set(found)


def _unassigned(where: LogRoot, since: float | None = None) -> list[LogFile]:
    """The label files given for any model (``labels/unassigned/date=…/``), oldest first."""
    folder = where.join("labels", "unassigned")
    out = []
    for day, _, is_dir in sorted(where.listdir(folder)):
        if not (is_dir and _DAY.match(day)):
            continue
        for name, size, _ in where.listdir(f"{folder}/{day}"):
            span = _span(name)
            if span is not None and (since is None or span[1] >= since * 1e9):
                out.append(LogFile(f"{folder}/{day}/{name}", span[1], size, span[0], span[2]))
    return sorted(out, key=lambda f: (f.written_ns, f.name))


def label_files(root: str | os.PathLike[str] | LogRoot, model: str, since: float | None = None) -> list[LogFile]:
    """The label files that concern ``model``: its own and those given for any model (written after ``since``)."""
    where = log_root(root)
    return list_files(where, "labels", model, start=since) + _unassigned(where, since)


def label_spans(root: str | os.PathLike[str] | LogRoot, model: str) -> list[tuple[str, float, float]]:
    """The label files that concern ``model``, each with the span of prediction times it labels (``-inf, inf``
    for a file that does not say)."""
    names = [f.name for f in label_files(root, model)]
    out = []
    for name in names:
        _, _, tail = name[:-8].rpartition("-t")
        lo, _, hi = tail.partition("-")
        try:
            out.append((name, float(lo), float(hi)))
        except ValueError:
            out.append((name, float("-inf"), float("inf")))
    return out


def read_labels(root: str | os.PathLike[str] | LogRoot, model: str) -> Any:
    """Labels given for ``model`` and those given for any model, newest last."""
    import pandas as pd

    where = log_root(root)
    mine = _read(where, "labels", model, None, None)
    shared = [_read_file(where, f.path).to_pandas() for f in _unassigned(where)]
    out = pd.concat([mine, *shared], ignore_index=True, sort=False) if shared else mine
    if len(out):  # a label file without rows (or a row that is not a number) labels each request's first row
        rows = pd.to_numeric(out["row"], errors="coerce") if "row" in out.columns else pd.Series(0, index=out.index)
        out["row"] = rows.where(rows.notna() & (rows >= 0), 0).astype("int64")
    return out


def read_labelled(root: str | os.PathLike[str] | LogRoot, model: str, start: Any, end: Any, target: str = "label") -> Any:
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
