"""What the model server checks at its door, before a request costs anything: the Host header, the token, the content type,
the body's size and how long it takes to arrive; request ids; and each protocol's error shape."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

from modelcycle.serving.bodies import ClientError

__all__ = ["HostGuard", "authorised", "error_response", "header_text", "is_loopback", "json_response", "read_body", "request_id",
           "require_json", "shape_for"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _dumps(data: Any) -> bytes:
    try:
        import orjson

        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY, default=str)  # NaN and inf become null
    except ImportError:
        return json.dumps(data, allow_nan=False, separators=(",", ":"), default=str).encode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(_dumps(data), status_code=status, media_type="application/json", headers=headers)


def header_text(text: str, limit: int = 500) -> str:
    """Text that is safe in an HTTP header: printable ASCII, everything else escaped (no CR, LF, NUL or non-Latin-1 byte)."""
    escaped = text.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _host_name(header: str) -> str:
    """The host of a Host header, without its port; IPv6 literals without brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, as in a Host header or a bind address) means this machine only.

    Example:
        >>> [is_loopback(h) for h in ("127.0.0.1:8080", "[::1]:80", "localhost", "app.localhost", "evil.example", "0.0.0.0")]
        [True, True, True, True, False, False]
    """
    name = _host_name(host).rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def shape_for(path: str) -> str:
    """Which protocol's error shape a path answers in."""
    if path.startswith("/v2/"):
        return "oip"
    if path in ("/invocations", "/ping"):
        return "mlflow"
    return "ours"


_MLFLOW_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 408: "BAD_REQUEST", 413: "BAD_REQUEST", 415: "BAD_REQUEST",
                 503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR"}


def error_response(shape: str, e: ClientError, request_id: str | None = None) -> Any:
    """``e`` in the shape a protocol's clients expect: ``{"error": msg}`` (Open Inference Protocol),
    ``{"error_code", "message"}`` (MLflow), or ``{"error": {"code", "message", "details"}}`` (ours)."""
    if shape == "oip":
        body: dict[str, Any] = {"error": e.message}
    elif shape == "mlflow":
        body = {"error_code": _MLFLOW_CODES.get(e.status, "BAD_REQUEST"), "message": e.message}
    else:
        body = {"error": {"code": e.code, "message": e.message, "details": e.details}}
    headers = dict(e.headers)
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return json_response(body, e.status, headers)


class HostGuard:
    """ASGI middleware refusing a Host header that is neither a loopback name or address nor in ``allowed``
    (what stops a web page from reaching a loopback server through DNS rebinding: a rebound name is neither)."""

    def __init__(self, app: Any, allowed: Iterable[str] | None = None, on_refuse: Any = None):
        self.app = app
        self.allowed = frozenset(_host_name(h).rstrip(".") for h in allowed) if allowed else None
        self.on_refuse = on_refuse

    def allows(self, header: str) -> bool:
        if is_loopback(header):
            return True
        if self.allowed is None:
            return False
        name = _host_name(header).rstrip(".")
        return name in self.allowed or "*" in self.allowed or any(a.startswith("*.") and name.endswith(a[1:]) for a in self.allowed)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        if self.on_refuse is not None:
            self.on_refuse("host")
        allowed = "a loopback name (localhost, 127.0.0.1, [::1])" + (f" or {', '.join(sorted(self.allowed))}" if self.allowed else "")
        error = ClientError(400, f"this server does not answer for host {header_text(host, 100)!r}; it answers for {allowed} "
                                 "(behind a proxy, start it with --allowed-hosts)", "bad_host", headers={"Connection": "close"})
        response = error_response(shape_for(scope.get("path", "")), error)
        await response(scope, receive, send)


def authorised(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the token (compared in constant time)."""
    if not token:
        return True
    return hmac.compare_digest((header or "").encode("utf-8", "surrogateescape"), f"Bearer {token}".encode("utf-8", "surrogateescape"))


def require_json(content_type: str | None) -> None:
    """A POST body must say it is JSON: a form or text/plain body (what a web page can send without asking) is refused.

    Raises:
        ClientError: 415.
    """
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        shown = header_text(kind, 80) if kind else "no content type"
        raise ClientError(415, f"send the body as Content-Type: application/json, not {shown}", "unsupported_media_type")


async def read_body(request: Any, limit: int, timeout: float) -> bytes:
    """The whole body, at most ``limit`` bytes, arrived within ``timeout`` seconds.

    Raises:
        ClientError: 413 beyond the limit, 408 when the body is too slow (the connection is closed).
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ClientError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,} (--max-body-mb)", "too_large",
                          headers={"Connection": "close"})

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ClientError(413, f"the body is over the limit of {limit:,} bytes (--max-body-mb)", "too_large",
                                  headers={"Connection": "close"})
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise ClientError(408, f"the body did not arrive within {timeout:g} s; send it at once (--body-timeout)", "body_timeout",
                          headers={"Connection": "close"}) from None


def request_id(headers: Any) -> str:
    """The client's ``X-Request-ID`` when it is a plain token, else a new random one (never guessable from another answer)."""
    given = headers.get("x-request-id", "")
    return given if _CLIENT_ID.fullmatch(given) else secrets.token_hex(16)
