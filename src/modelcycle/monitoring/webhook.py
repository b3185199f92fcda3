"""Alert delivery to a webhook: on one background thread, retried, never redirected, each outcome recorded.

Raising an alert must not wait for its receiver: ``submit`` records the delivery as ``pending`` in the
metadata store and queues it; one daemon thread per process (started on the first alert) POSTs it, up to
three times with growing pauses, and records ``delivered`` or ``failed`` with the last error. The queue is
bounded: when it is full, the oldest waiting delivery is dropped and recorded as failed. ``flush`` waits a
bounded time for what is queued (``modelcycle agent --once`` and process exit call it).

Only ``http`` and ``https`` URLs are posted to, and a redirect is never followed: a 3xx answer is a failed
delivery, so a receiver cannot send the alert (or the agent) to another host or another scheme.
"""

from __future__ import annotations

import atexit
import collections
import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelcycle.errors import InvalidInputError

__all__ = ["check_url", "flush", "submit"]

log = logging.getLogger("modelcycle.monitoring")

TIMEOUT = 5.0  # seconds one POST may take to connect and to answer
BACKOFF = (1.0, 4.0)  # pauses before the second and the third attempt: three attempts in all
QUEUE_SIZE = 100  # deliveries waiting; beyond it the oldest is dropped and recorded as failed
FLUSH_SECONDS = 30.0  # what ``flush()`` waits by default: one delivery's three attempts at the longest, and some
EXIT_SECONDS = 10.0  # what process exit waits for pending deliveries (a service manager's stop timeout is short)
ERROR_CHARS = 300


def check_url(url: str) -> None:
    """Refuse a webhook URL that is not ``http://`` or ``https://`` with a host.

    Args:
        url: the webhook's URL.

    Raises:
        InvalidInputError: for any other scheme (``ftp://``, ``file://`` …), or no host.

    Example:
        >>> check_url("https://hooks.example.com/modelcycle")
        >>> check_url("file:///etc/passwd")
        Traceback (most recent call last):
        ...
        modelcycle.errors.InvalidInputError: webhook 'file:///etc/passwd' must be an http:// or https:// URL with a host, \
such as https://hooks.example.com/alerts
    """
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInputError(f"webhook {url!r} must be an http:// or https:// URL with a host, such as https://hooks.example.com/alerts")


@dataclass
class _Job:
    alert_id: str
    event: str  # firing | resolved
    url: str
    body: bytes
    store: Any  # where the outcome is recorded (None: nowhere)


class _Failed(Exception):
    def __init__(self, reason: str, final: bool = False):
        super().__init__(reason)
        self.reason, self.final = reason, final


class _Deadline:
    """One POST's total time: when it is up, every socket the POST opened is shut down, which ends a read that a
    receiver trickling one byte at a time would otherwise keep alive past any per-read timeout."""

    def __init__(self, seconds: float):
        self.passed = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: Any) -> None:
        with self._lock:
            if self.passed:
                _shut(sock)
            self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: Any) -> None:
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _timed(base: type[http.client.HTTPConnection], deadline: _Deadline) -> type[http.client.HTTPConnection]:
    class Connection(base):  # type: ignore[valid-type, misc]
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    return Connection


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: Any) -> Any:
        return self.do_open(_timed(http.client.HTTPConnection, self.deadline), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: Any) -> Any:
        return self.do_open(_timed(http.client.HTTPSConnection, self.deadline), req, context=self._context)


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """HTTP and HTTPS only, with no redirect handler: a 3xx answer reaches us as an error and is never followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _HTTP(deadline), _HTTPS(deadline),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _post(url: str, body: bytes) -> None:
    """One attempt, within ``TIMEOUT`` seconds in all; raises ``_Failed`` with the reason (``final`` when trying again cannot help)."""
    try:
        check_url(url)
    except InvalidInputError as e:
        raise _Failed(str(e), final=True) from None
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "modelcycle-alerts"})
    deadline = _Deadline(TIMEOUT)
    late = f"the webhook did not answer within {TIMEOUT:g} s"
    try:
        with _opener(deadline).open(request, timeout=TIMEOUT) as answer:
            answer.read(1024)
        if deadline.passed:  # cut off mid-answer: what was read is not an answer
            raise _Failed(late)
    except _Failed:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        if 300 <= e.code < 400:
            target = e.headers.get("Location") if e.headers is not None else None
            raise _Failed(f"the webhook answered {e.code} (redirect to {target or 'nowhere'}); "
                          "modelcycle does not follow redirects — give the final URL", final=True) from None
        raise _Failed(f"the webhook answered {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError) or deadline.passed:
            raise _Failed(late) from None
        raise _Failed(f"could not reach the webhook: {e.reason}") from None
    except TimeoutError:
        raise _Failed(late) from None
    except (OSError, http.client.HTTPException) as e:
        if deadline.passed:
            raise _Failed(late) from None
        raise _Failed(f"could not reach the webhook: {type(e).__name__}: {e}") from None
    finally:
        deadline.cancel()


def _record(job: _Job, state: str, attempts: int, error: str | None) -> None:
    if job.store is None:
        return
    line = " ".join(error.split())[:ERROR_CHARS] if error else None
    try:
        job.store.alert_delivery(job.alert_id, {"event": job.event, "state": state, "attempts": attempts, "error": line,
                                                "at": time.time()})
    except Exception as e:  # a store that went away: the outcome is logged instead
        log.warning("could not record the delivery of alert %s: %s", job.alert_id, e)


def _deliver(job: _Job) -> None:
    attempts = len(BACKOFF) + 1
    for attempt in range(1, attempts + 1):
        try:
            _post(job.url, job.body)
        except _Failed as e:
            if e.final or attempt == attempts:
                log.warning("could not deliver alert %s (%s) to the webhook after %d attempt(s): %s", job.alert_id, job.event,
                            attempt, e.reason)
                _record(job, "failed", attempt, e.reason)
                return
            _record(job, "pending", attempt, e.reason)
            time.sleep(BACKOFF[attempt - 1])
        else:
            _record(job, "delivered", attempt, None)
            return


class _Worker:
    """One daemon thread that delivers queued alerts in order."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: collections.deque[_Job] = collections.deque()
        self.busy = 0  # taken from the queue, not finished
        self.thread = threading.Thread(target=self._run, name="modelcycle-alert-delivery", daemon=True)
        self.thread.start()

    def put(self, job: _Job) -> _Job | None:
        """Queue ``job``; the delivery dropped to make room for it, if the queue was full."""
        with self.cond:
            dropped = self.queue.popleft() if len(self.queue) >= QUEUE_SIZE else None
            self.queue.append(job)
            self.cond.notify_all()
        return dropped

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                job = self.queue.popleft()
                self.busy += 1
            try:
                _deliver(job)
            except Exception:  # the thread outlives any one delivery
                log.exception("delivering alert %s failed", job.alert_id)
            finally:
                with self.cond:
                    self.busy -= 1
                    self.cond.notify_all()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def pending(self) -> int:
        with self.cond:
            return len(self.queue) + self.busy


_lock = threading.Lock()
_worker: _Worker | None = None
_exit_registered = False


def _reset_after_fork() -> None:  # the child has no delivery thread: it starts its own when it raises an alert
    global _lock, _worker
    _lock = threading.Lock()
    _worker = None


os.register_at_fork(after_in_child=_reset_after_fork)


def _get_worker() -> _Worker:
    global _worker, _exit_registered
    with _lock:
        if _worker is None:
            _worker = _Worker()
            if not _exit_registered:
                atexit.register(_at_exit)
                _exit_registered = True
        return _worker


def _at_exit() -> None:
    if not flush(EXIT_SECONDS) and _worker is not None:
        log.warning("%d alert delivery(ies) still pending at exit were not sent", _worker.pending())


def submit(alert: Mapping[str, Any], url: str, store: Any = None) -> None:
    """Queue ``alert`` for delivery to ``url`` and return at once; its outcome is recorded in ``store``.

    Args:
        alert: the alert event (its ``id`` and ``state`` name the record; all of it is the JSON body).
        url: the webhook (checked again when sent).
        store: a metadata store with ``alert_delivery``, or None to record nothing.
    """
    job = _Job(str(alert["id"]), "resolved" if alert.get("state") == "resolved" else "firing", url,
               json.dumps(dict(alert), default=str).encode(), store)
    _record(job, "pending", 0, None)
    dropped = _get_worker().put(job)
    if dropped is not None:
        log.warning("alert delivery queue full: dropped alert %s (%s)", dropped.alert_id, dropped.event)
        _record(dropped, "failed", 0, f"queue full: more than {QUEUE_SIZE} deliveries were waiting; this one was dropped unsent")


def flush(timeout: float = FLUSH_SECONDS) -> bool:
    """Wait up to ``timeout`` seconds for the queued deliveries to finish (delivered or failed).

    Args:
        timeout: the longest wait, in seconds.

    Returns:
        True when none is left, False when some were still pending at the deadline.

    Example:
        >>> flush(timeout=10.0)  # doctest: +SKIP
        True
    """
    worker = _worker
    return True if worker is None else worker.wait(timeout)
