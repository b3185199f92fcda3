"""The prediction log and the labels through the team server: replicas, laptops and agents that know only the server's
URL list, read, publish and delete the log's files at ``/api/v1/logs/<path>``, kept in the server's own artifact store.

A path is one of the log's own shapes and nothing else (checked whole, before anything is touched)::

    predictions | labels                                   a listing of the models logged
    <kind>/model=<name> | labels/unassigned                a listing of date folders
    <kind>/model=<name>/date=YYYY-MM-DD                    a listing of files
    <kind>/model=<name>/date=YYYY-MM-DD/part-<…>.parquet   a file: read (with a Range), published, deleted

Reading needs ``read`` on the model, publishing and deleting ``write`` (a replica merges its own files and deletes
what it merged). Labels given for any model (``unassigned``) join every model's predictions: they need ``write`` on
all models. A published file is received into a file of the server's own (at most ``MAX_UPLOADS`` at once), read whole
in a process whose memory is capped (``_logcheck``: Parquet, the log's columns, what it takes once read, times a reader
can hold), and is never replaced by other bytes.
"""


import asyncio
import contextlib
import datetime
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from modelcycle import errors
from modelcycle.server._logcheck import check_published
from modelcycle.server.access import Principal

__all__ = ["add_log_routes"]

MAX_LOG_FILE = 256 << 20  # bytes of one published file (a second's batch or an hour merged is far smaller)
MAX_UPLOADS = 8  # log files received at once (more are answered 503: the replica sends it again later)
CHUNK = 1 << 20  # bytes a file is sent in
MIN_RATE = 64 << 10  # bytes per second a log file's body comes at on average, once GRACE seconds have passed
GRACE = 30.0  # seconds a body may take before that, and may stop for
MAX_UPLOADS_PER_USER = 4  # so that one user (a slow link, or a hostile one) cannot hold every place
_KIND = r"(?:predictions|labels)"
_MODEL = r"model=[A-Za-z0-9][A-Za-z0-9_.-]{0,249}"
_OWNER = rf"(?:{_MODEL}|unassigned)"
_DAY = r"date=\d{4}-\d{2}-\d{2}"
_FILE = r"part-\d{1,20}-[A-Za-z0-9_-]{1,200}\.parquet"
_FOLDER = re.compile(rf"{_KIND}(?:/{_OWNER}(?:/{_DAY})?)?")
_PATH = re.compile(rf"{_KIND}/{_OWNER}/{_DAY}/{_FILE}")
_RANGE = re.compile(r"bytes=(\d{1,15})-(\d{0,15})")


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _chunks(source: Any, start: int, stop: int) -> Any:
    """The bytes ``start:stop`` of the open file ``source``, a chunk at a time; the file is closed at the end."""
    with source:
        source.seek(start)
        left = stop - start
        while left > 0:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _parse(path: str, file: bool) -> tuple[list[str], str | None]:
    """The path's segments and the model it concerns (None for the labels given for any model, or a kind's listing)."""
    if not (_PATH if file else _FOLDER).fullmatch(path):
        what = "<kind>/model=<name>/date=YYYY-MM-DD/part-<ns>-<writer>.parquet" if file else \
            "predictions, labels, <kind>/model=<name> or <kind>/model=<name>/date=YYYY-MM-DD"
        raise errors.NotFoundError(f"{path[:120]!r} is not a path of the prediction log; a path is {what}")
    parts = path.split("/")
    if len(parts) > 2:
        try:
            datetime.date.fromisoformat(parts[2][5:])
        except ValueError:
            raise errors.NotFoundError(f"{parts[2]!r} is not a day of the prediction log (date=YYYY-MM-DD)") from None
    if parts[0] == "predictions" and len(parts) > 1 and parts[1] == "unassigned":
        raise errors.NotFoundError("predictions are always logged for a model: predictions/model=<name>/…")
    return parts, (parts[1][6:] if len(parts) > 1 and parts[1].startswith("model=") else None)


def _may(p: Principal | None, parts: list[str], model: str | None, role: str) -> None:
    if p is None:
        return
    if model is not None:
        p.require("model", model, role)
    elif len(parts) > 1 and role != "read" and not p.can("model", "*", "write"):  # labels for any model
        raise errors.PermissionDeniedError(
            f"user {p.name!r} may not give labels for every model; name the model the labels are for "
            "(mc.log_labels(..., model=...)), or an admin grants write on model:*")
    elif not p.anything():
        raise errors.PermissionDeniedError(f"user {p.name!r} has no role on anything yet; an admin can grant one")


def add_log_routes(app: Any, log_uri: str, run_in_threadpool: Any, spool: Path) -> None:
    """``GET|PUT|DELETE /api/v1/logs/{path}`` over the log kept at ``log_uri`` (the server's artifact store); bodies are
    received into files in ``spool``."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    from modelcycle.store.predictions import log_root

    where = log_root(log_uri)

    def full(parts: list[str]) -> str:
        path = where.join(*parts)
        if where.local:  # a link planted in the artifact root leads nowhere: every folder on the way is a real one
            folder = os.path.dirname(path) if parts[-1].endswith(".parquet") else path
            while not os.path.lexists(folder) and len(folder) > len(where.base):
                folder = os.path.dirname(folder)  # the deepest folder that exists is where a new one would be made
            if os.path.realpath(folder) != folder:
                raise errors.NotFoundError(f"{'/'.join(parts)[:120]!r} is not a folder of the prediction log")
        return path

    def listing(parts: list[str], p: Principal | None) -> list[dict[str, Any]]:
        entries = where.listdir(full(parts))
        out = [{"name": n, "size": size, "dir": d} for n, size, d in entries if not n.startswith(".")]
        if len(parts) == 1 and p is not None:  # the models the user may read
            out = [e for e in out if (e["name"] == "unassigned" and parts[0] == "labels" and p.anything())
                   or (e["name"].startswith("model=") and p.can("model", e["name"][6:], "read"))]
        return sorted(out, key=lambda e: e["name"])

    def opened(path: str, start: int, end: int | None) -> tuple[Any, int]:
        """The file at ``path`` open for reading (never through a link, never a FIFO or a folder), and where the bytes
        asked for end; it is sent a megabyte at a time, so readers at once hold a megabyte each, not a file each."""
        if where.local:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError as e:  # gone, or a link (ELOOP)
                raise FileNotFoundError(path) from e
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or start >= max(st.st_size, 1):
                os.close(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise FileNotFoundError(path)
                raise _Unsatisfiable(st.st_size)
            size, source = st.st_size, os.fdopen(fd, "rb")
        else:
            size = int(where.fs.size(path))
            if start >= max(size, 1):
                raise _Unsatisfiable(size)
            source = where.fs.open(path, "rb", block_size=CHUNK)
        return source, min(size, MAX_LOG_FILE) if end is None else min(end, size)

    known: dict[str, Any] = {}  # the columns of each model's log (and of the labels), as published so far

    def fits(parts: list[str], source: str, shown: str) -> None:
        """A file's columns join the log it is published to: a column holds one kind of value in every file (else every
        reader of the model would fail on the mixture), whoever wrote them."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = "/".join(parts[:2])
        new = pq.read_schema(source)
        old = known.get(key) or newest_schema(parts)
        if old is not None:
            try:
                new = pa.unify_schemas([old, new], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise errors.ConflictError(f"{shown} does not fit the log it is published to ({str(e)[:300]}): a column "
                                           "holds one kind of value in every file; it was not published") from None
        known[key] = new

    def newest_schema(parts: list[str]) -> Any:
        """The columns of the newest file of the log ``parts`` names (None when it has none yet)."""
        import pyarrow.parquet as pq

        folder = full(parts[:2])
        for day, _, is_dir in sorted(where.listdir(folder), reverse=True):
            if not is_dir or not day.startswith("date="):
                continue
            files = sorted(n for n, _, d in where.listdir(f"{folder}/{day}") if not d and n.endswith(".parquet")
                           and not n.startswith("."))
            if files:
                try:
                    if where.local:
                        return pq.read_schema(f"{folder}/{day}/{files[-1]}")
                    with where.fs.open(f"{folder}/{day}/{files[-1]}", "rb") as f:
                        return pq.read_schema(f)
                except (OSError, ValueError):
                    return None  # merged away meanwhile, or unreadable: the next publish looks again
        return None

    def publish(path: str, source: str) -> int:
        if where.write_file(path, source, replace=False):  # never over another file, never through a planted link
            return 201
        if not same(path, source):
            raise errors.ConflictError(f"{path.rsplit('/', 1)[-1]} is published already with other bytes; a log file is "
                                       "never replaced: publish under a new name")
        return 200  # the same bytes again: an upload retried

    def same(path: str, source: str) -> bool:
        """Whether the published file at ``path`` holds the bytes of the local file ``source``, compared a chunk at a
        time."""
        size = os.path.getsize(source)
        try:
            kept, stop = opened(path, 0, None)
        except (OSError, _Unsatisfiable):
            return False  # a link, a folder: not a file of the log
        with open(source, "rb") as mine:
            if stop != size:
                kept.close()
                return False
            return all(chunk == mine.read(len(chunk)) for chunk in _chunks(kept, 0, stop))

    def remove(path: str) -> None:
        if not where.local:
            where.delete(path)
            return
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                raise errors.NotFoundError(f"{path.rsplit('/', 1)[-1]} is not a file of the prediction log")
            os.unlink(path)  # a file, or a link itself: never what a link names
        except FileNotFoundError:
            pass

    @app.get("/api/v1/logs/{path:path}", tags=["prediction log"])
    async def log_get(path: str, request: Request) -> Any:
        p = request.state.principal
        if path.endswith(".parquet"):
            parts, model = _parse(path, file=True)
            _may(p, parts, model, "read")
            wanted = request.headers.get("range")
            start, end = 0, None
            if wanted is not None:
                m = _RANGE.fullmatch(wanted.strip())
                if m is None:
                    raise errors.InvalidInputError(f"Range {wanted[:80]!r} is not one of the forms bytes=<from>-<to> or bytes=<from>-")
                start, end = int(m.group(1)), (int(m.group(2)) + 1 if m.group(2) else None)
                if end is not None and end <= start:
                    return Response(status_code=416, headers={"Content-Range": "bytes */*"})
            try:
                source, stop = await run_in_threadpool(opened, full(parts), start, end)
            except _Unsatisfiable as e:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{e.size}"})
            except (FileNotFoundError, IsADirectoryError):
                raise errors.NotFoundError(f"the prediction log holds no file {path[:200]!r} (merged and deleted since it was "
                                           "listed, or never published)") from None
            headers = {"Content-Length": str(stop - start)}
            if wanted is not None:
                headers["Content-Range"] = f"bytes {start}-{stop - 1}/*"
            return StreamingResponse(_chunks(source, start, stop), 206 if wanted is not None else 200, headers=headers,
                                     media_type="application/octet-stream")
        parts, model = _parse(path.rstrip("/"), file=False)
        _may(p, parts, model, "read")
        return JSONResponse(await run_in_threadpool(listing, parts, p))

    uploads = asyncio.Semaphore(MAX_UPLOADS)
    receiving: dict[str, int] = {}  # uploads under way, by user

    @app.put("/api/v1/logs/{path:path}", tags=["prediction log"])
    async def log_put(path: str, request: Request) -> Any:
        parts, model = _parse(path, file=True)
        _may(request.state.principal, parts, model, "write")
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_LOG_FILE:
            raise errors.InvalidInputError(f"a log file is published with a Content-Length of at most {MAX_LOG_FILE:,} bytes")
        who = request.state.principal.name if request.state.principal is not None else ""
        if uploads.locked() or receiving.get(who, 0) >= MAX_UPLOADS_PER_USER:
            raise errors.StoreBusyError(f"the server is receiving {MAX_UPLOADS} log files already ({MAX_UPLOADS_PER_USER} "
                                        "at most from one user); send this one again in a moment")
        receiving[who] = receiving.get(who, 0) + 1
        try:
            return await receive(path, parts, int(length), request)
        finally:
            receiving[who] -= 1
            if not receiving[who]:
                del receiving[who]

    async def receive(path: str, parts: list[str], length: int, request: Request) -> Any:
        async with uploads:
            fd, name = tempfile.mkstemp(dir=spool, prefix=f".log-{os.getpid()}-")  # on disk, not in memory: one copy, checked from there
            try:
                size = 0
                began = time.monotonic()
                with os.fdopen(fd, "wb") as out:
                    try:
                        async with asyncio.timeout(GRACE) as limit:  # silent for GRACE seconds: cut
                            async for chunk in request.stream():
                                size += len(chunk)
                                if size > length:
                                    raise errors.InvalidInputError(f"the body holds more than its Content-Length ({length})")
                                await run_in_threadpool(out.write, chunk)
                                took = time.monotonic() - began
                                if took > GRACE and size < (took - GRACE) * MIN_RATE:  # trickled in: cut
                                    raise TimeoutError
                                limit.reschedule(asyncio.get_running_loop().time() + GRACE)
                    except TimeoutError:
                        raise errors.InvalidInputError(f"the body came slower than {MIN_RATE // 1024:,} KB/s on average after "
                                                       f"{GRACE:g} s, or stopped for {GRACE:g} s; send it again") from None
                if size != length:
                    raise errors.InvalidInputError(f"the body was cut at {size:,} of {length} bytes; send it again")
                target = full(parts)
                try:  # read whole, as readers will, in a process of its own, before anyone can read it
                    await run_in_threadpool(check_published, name, target)
                except errors.InvalidInputError as e:
                    said = re.sub(r"[.;]? ?[Mm]ove it out of the log folder\.?", "", str(e).replace(target, path))
                    raise errors.InvalidInputError(f"{said}; it was not published") from None
                await run_in_threadpool(fits, parts, name, path)
                status = await run_in_threadpool(publish, target, name)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(name)
        return JSONResponse({"path": path, "size": size}, status)

    @app.delete("/api/v1/logs/{path:path}", tags=["prediction log"])
    async def log_delete(path: str, request: Request) -> Any:
        parts, model = _parse(path, file=True)
        _may(request.state.principal, parts, model, "write")
        await run_in_threadpool(remove, full(parts))
        return Response(status_code=204)
