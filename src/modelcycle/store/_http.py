"""Requests to a modelcycle server: one kept-alive connection per thread, retried while the server is out of reach,
and the server's errors raised as the same modelcycle errors the stores raise."""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import urllib.parse
from typing import Any, BinaryIO

from modelcycle import errors

__all__ = ["Transport"]

_LOST = (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest, http.client.BadStatusLine,
         socket.timeout, TimeoutError, OSError)


class Transport:
    """``request`` sends one request and returns the answer; a connection the server closed, refused or never
    answered is retried with back-off for ``retry_for`` seconds (a server restarting), then one clear error; so is an
    answer 429 (the user's searches at the server's limit), after the Retry-After it names.

    Example:
        >>> Transport("http://127.0.0.1:5000").base
        'http://127.0.0.1:5000'
    """

    def __init__(self, uri: str, token: str | None = None, timeout: float = 300.0, retry_for: float = 60.0,
                 error: type[errors.ModelcycleError] = errors.StoreError) -> None:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ConfigurationError(f"{uri!r} is not a modelcycle server URL; use http://host:port")
        if parts.username or parts.password:
            raise errors.ConfigurationError("put the server's token in MODELCYCLE_TRACKING_TOKEN, not in the URL")
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.timeout = timeout
        self.retry_for = retry_for
        self.error = error
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: bytes | BinaryIO | None = None, headers: dict[str, str] | None = None,
                rewind: Any = None, stream: bool = False) -> tuple[int, bytes | http.client.HTTPResponse]:
        """The status and the body (with ``stream``, the open response to read from).

        ``rewind`` is called before a retry when ``body`` is a file (back to its start)."""
        head = {"Accept": "application/json", **(headers or {})}
        if self.token:
            head["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path, body=body, headers=head)
                response = conn.getresponse()
            except _LOST as e:
                self._drop()
                if time.monotonic() > deadline:
                    raise self.error(f"cannot reach the modelcycle server at {self.base}: {e or type(e).__name__}") from None
                if rewind is not None:
                    rewind()
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
                continue
            if response.status < 400 and stream:
                return response.status, response
            data = response.read()
            if response.status == 429 and time.monotonic() < deadline:  # this user's searches are at the server's limit
                try:
                    wait = min(max(float(response.getheader("Retry-After") or 1), 0.05), 5.0)
                except ValueError:
                    wait = 1.0
                if rewind is not None:
                    rewind()
                time.sleep(wait * (0.5 + random.random()))
                continue
            if response.status >= 400:
                raise _error(response.status, data, self.base)
            return response.status, data


def _error(status: int, data: bytes, base: str) -> errors.ModelcycleError:
    """The server's error as the modelcycle error it names (one of the error tree's, never anything else)."""
    try:
        detail = json.loads(data)["error"]
        code, message, more = str(detail["code"]), str(detail["message"]), detail.get("details")
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, more = "", data[:300].decode("utf-8", "replace") or f"HTTP {status}", None
    cls = getattr(errors, code, None)
    if cls is errors.FilterSyntaxError:  # its message already shows where; the position is kept for editors
        e = errors.FilterSyntaxError(message)
        if isinstance(more, dict):
            e.expression, e.position = str(more.get("expression", "")), more.get("position")
        return e
    if not (isinstance(cls, type) and issubclass(cls, errors.ModelcycleError)):
        cls = {401: errors.ConfigurationError, 403: errors.ConfigurationError, 404: errors.NotFoundError,
               409: errors.ConflictError}.get(status, errors.InvalidInputError if status < 500 else errors.StoreError)
    if status in (401, 403):
        message = f"the modelcycle server at {base} refused the request: {message}"
    return cls(message)
