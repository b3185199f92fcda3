"""A log file published to the server is read whole before anyone may read it, in a process of its own whose memory
is capped: a file's footer and page headers are the file's own claims, and a few kilobytes can claim (and make a
reader allocate) gigabytes. Whatever the file says, the check either measures what it takes once read or runs out of
its cap and refuses it; the server itself never holds more than the file's bytes.

Nothing here imports pyarrow at module level: the checking process picks its allocator before pyarrow loads.
"""

import concurrent.futures
import contextlib
import multiprocessing
import os
import threading

from modelcycle import errors

__all__ = ["MEMORY_CAP", "check_published", "shutdown"]

MEMORY_CAP = 2 << 30  # bytes the checking process may allocate beyond what it holds once started
BATCH_ROWS = 65_536
WORKERS = 2  # files checked at once (a slow one holds one; uploads per user are limited in logs.py)

_lock = threading.Lock()
_pool: concurrent.futures.ProcessPoolExecutor | None = None


def _start(cap: int) -> None:
    """In the checking process: ended with the server however it ends (even killed), the system allocator (which a
    capped address space makes fail cleanly), then the cap."""
    import ctypes
    import resource
    import signal

    with contextlib.suppress(OSError, AttributeError):  # Linux: this process is killed when the server's is
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"

    import pyarrow
    import pyarrow.parquet  # noqa: F401

    import modelcycle.store.predictions  # noqa: F401

    with open("/proc/self/status") as f:
        held = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (held + cap, held + cap))


def _read(spooled: str, path: str) -> int:
    """In the checking process: every row of the file at ``spooled`` (published as ``path``) read as readers read
    it, batch by batch; the bytes it takes once read, or an error that says why it is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelcycle.store.predictions import EXPANSION, MAX_READ_BYTES, _check, _is_text, measure

    try:
        with pa.memory_map(spooled) as source:
            data = source.read_buffer()
        size, schema, _ = _check(path, None, data)
        text = [f.name for f in schema if _is_text(f.type)]
        times = [f.name for f in schema if pa.types.is_timestamp(f.type)]
        budget = min(EXPANSION * max(size, 1), MAX_READ_BYTES)
        total = 0
        reader = pq.ParquetFile(pa.BufferReader(data), read_dictionary=text)
        for batch in reader.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
            total += measure(pa.Table.from_batches([batch]))
            if total > budget:
                raise errors.InvalidInputError(
                    f"{path} takes more than {budget:,} bytes once read, from a {size:,}-byte file (a log file is never "
                    "compressed that much: it is damaged or crafted)")
            for name in times:  # a time every reader can hold (pandas' nanoseconds: years 1677 to 2262)
                column = batch.column(name)
                try:
                    column.cast(pa.timestamp("ns", column.type.tz), safe=True)
                except pa.ArrowInvalid:
                    raise errors.InvalidInputError(
                        f"{path} holds a {name} out of the range a log can hold (years 1677 to 2262)") from None
        return total
    except MemoryError:
        raise errors.InvalidInputError(f"{path} takes more than {MEMORY_CAP:,} bytes of memory to read (it is damaged "
                                       "or crafted)") from None
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, pa.ArrowMemoryError):
            raise errors.InvalidInputError(f"{path} takes more than {MEMORY_CAP:,} bytes of memory to read (it is "
                                           "damaged or crafted)") from None
        raise errors.InvalidInputError(f"{path} cannot be read whole ({str(e)[:200]}): it is damaged or was not written "
                                       "by modelcycle") from None


def _executor() -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                initargs=(MEMORY_CAP,), max_tasks_per_child=200)
        return _pool


def check_published(spooled: str, path: str, timeout: float = 300.0) -> int:
    """Read the file at ``spooled`` whole in the checking process (one file at a time); the bytes it takes once read.

    Raises:
        InvalidInputError: the file is not a log file, or reading it takes more than its size or the cap allow.
    """
    global _pool
    pool = _executor()
    future = pool.submit(_read, spooled, path)
    try:
        while not future.running() and not future.done():  # its time counts from when its check starts, not in line
            with contextlib.suppress(concurrent.futures.TimeoutError):
                future.result(timeout=0.05)
        return future.result(timeout=timeout)
    except concurrent.futures.process.BrokenProcessPool:  # the file took the checking process down (or another did)
        with _lock:
            if _pool is pool:
                _pool = None
        raise errors.InvalidInputError(f"{path} could not be read without ending the process that reads it (it is "
                                       "damaged or crafted, or the one checked beside it was)") from None
    except concurrent.futures.CancelledError:  # waiting while a check that ran too long ended the process
        raise errors.StoreBusyError("the server's log checker was restarted; send the file again") from None
    except concurrent.futures.TimeoutError:
        shutdown(kill=True)
        raise errors.InvalidInputError(f"{path} took more than {timeout:.0f} s to read (it is damaged or crafted)") from None


def shutdown(kill: bool = False) -> None:
    """End the checking process: once its check is done (the server stops), or at once (``kill``: a check ran too
    long)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    if kill:
        for p in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                p.kill()
    pool.shutdown(wait=True, cancel_futures=True)
