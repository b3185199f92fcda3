"""The team server's application: the metadata store's calls and the artifact blobs over HTTP, for clients that know
only its URL and a token."""


import contextlib
import hashlib
import hmac
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelcycle import errors
from modelcycle.server.access import Answer, Gate, Principal, sanitize
from modelcycle.server.logs import add_log_routes
from modelcycle.settings import Settings
from modelcycle.store.rpc import CALLS, codec

__all__ = ["create_app"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_STATUS = {  # the error tree's classes → HTTP status; anything else a client caused is a 400
    errors.NotFoundError: 404, errors.PermissionDeniedError: 403, errors.ConflictError: 409, errors.GateError: 409, errors.StoreBusyError: 503,
    errors.StoreRefusedError: 409, errors.StoreError: 503, errors.ArtifactCorruptedError: 500, errors.ArtifactError: 503,
}
_CONFLICT = re.compile(r"UNIQUE constraint failed|duplicate key value|violates unique constraint")
_DANGLING = re.compile(r"FOREIGN KEY constraint failed|violates foreign key constraint")
_INVALID = re.compile(r"NOT NULL constraint failed|violates not-null constraint|CHECK constraint failed|violates check constraint|"
                      r"out of range|invalid input syntax|value too long")
MAX_CALL = 64 << 20  # bytes of one call's JSON body (a client sends bigger write batches in parts)
SEARCH_SECONDS = 30.0  # a search or count longer than this is stopped: one user's filter cannot hold the store for everyone
MAX_BLOB = 1 << 40  # bytes one upload may carry (1 TiB): the spool folder's disk is the practical bound


_SPOOLED = re.compile(r"^\.[a-z]+-(\d+)-")  # a spooled transfer's name: the pid of the server process that receives it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive
    return True


def _status(e: errors.ModelcycleError) -> int:
    for cls in type(e).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def _error(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status, headers=headers)


def create_app(settings: Settings, token: str | None = None, allowed_hosts: list[str] | None = None,
               loopback: bool = True, no_auth: bool = False) -> Any:
    """The FastAPI application over the stores ``settings`` names.

    Every request but ``/api/v1/health`` carries a bearer token: the server's own (``token``, an admin's), or a user's
    (``modelcycle server users add``), whose roles decide which calls it may make. While there is neither a server
    token nor a user with a live token, the server answers anyone who reaches it (on loopback by default).

    Args:
        settings: where the records and the blobs are kept (the server's own stores: SQLite or PostgreSQL, a folder or
            an object store).
        token: the server's token: whoever carries it is an admin.
        allowed_hosts: ``Host`` names answered beside the loopback ones (behind a proxy).
        loopback: the server is bound to a loopback address: a foreign ``Host`` header is refused (DNS rebinding).
        no_auth: answer anyone as an admin, whatever users exist.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> import tempfile
        >>> app = create_app(Settings.for_home(tempfile.mkdtemp()))
        >>> TestClient(app, base_url="http://127.0.0.1").get("/api/v1/health").json()["status"]
        'ok'
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from starlette.background import BackgroundTask
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

    from modelcycle.server._logcheck import shutdown as shutdown_checker
    from modelcycle.serving.http import HostGuard
    from modelcycle.store import open_artifact_store, open_metadata_store

    if settings.store_uri.startswith(("http://", "https://")) or settings.artifact_uri.startswith(("http://", "https://")):
        raise errors.ConfigurationError("a modelcycle server keeps its records in a database and a folder or object "
                                        "store, not in another server: unset MODELCYCLE_TRACKING_URI where it runs")
    options: dict[str, Any] = {"busy_timeout": settings.busy_timeout, "search_timeout": SEARCH_SECONDS}
    if settings.store_uri.startswith("sqlite"):
        options["sqlite_sync"] = settings.sqlite_sync
    store = open_metadata_store(settings.store_uri, **options)
    artifacts = open_artifact_store(settings.artifact_uri)
    spool = Path(settings.home) / "server-uploads"
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    for left in spool.glob(".*-*"):  # what a server killed mid-transfer left: its process is gone (or it is an hour old)
        with contextlib.suppress(OSError):
            owner = _SPOOLED.match(left.name)
            if (owner is not None and not _alive(int(owner.group(1)))) or left.stat().st_mtime < time.time() - 3600:
                left.unlink()

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield
        store.close()
        shutdown_checker()

    app = FastAPI(title="modelcycle server", version=_version(), docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/v1/openapi.json", lifespan=lifespan)
    app.state.store, app.state.artifacts = store, artifacts
    who = _Authenticator(store, token, no_auth)
    gate = Gate(store, settings.heartbeat_timeout)
    app.add_middleware(_Authenticate, who=who, run_in_threadpool=run_in_threadpool)
    app.add_middleware(_NoSniff)
    if loopback or allowed_hosts:  # added last: the outermost, so a foreign Host is refused before anything else
        app.add_middleware(HostGuard, allowed=allowed_hosts)

    hidden = [(str(x), what) for x, what in ((getattr(store, "display_uri", ""), "the server's metadata store"),
                                             (getattr(artifacts, "uri", ""), "the server's artifact store")) if x]

    @app.exception_handler(errors.ModelcycleError)
    async def _ours(_: Request, e: errors.ModelcycleError) -> Any:
        details = {"expression": e.expression, "position": e.position} if isinstance(e, errors.FilterSyntaxError) else None
        message, status, code = str(e), _status(e), type(e).__name__
        for where, what in hidden:  # clients are not told where the server keeps things
            message = message.replace(where, what)
        if isinstance(e, errors.StoreError) and _CONFLICT.search(message):  # a client's write clashed with a record
            status, code = 409, "ConflictError"
        elif isinstance(e, errors.StoreError) and _DANGLING.search(message):  # it named a record that does not exist
            status = 409  # the store's own error, as SQLite and PostgreSQL raise it; the client caused it: not a 5xx
            message = f"{message} (the request names a record that does not exist: an experiment, a run or a model version)"
        elif isinstance(e, errors.StoreError) and _INVALID.search(message):
            status = 400
        return _error(status, code, message, details)

    @app.exception_handler(RecursionError)
    async def _deep(_: Request, e: RecursionError) -> Any:
        return _error(400, "InvalidInputError", "the request nests too deeply (a filter, an order or a body); flatten it")

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, e: OverflowError) -> Any:
        return _error(400, "InvalidInputError", "a number in the request is out of range (integers are stored in 64 bits)")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> Any:
        details = [{"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))} for err in e.errors()][:20]
        where = ".".join(details[0]["loc"]) if details else "the body"
        return _error(400, "InvalidInputError", f"the request does not fit this call: {where}: "
                                                 f"{details[0]['msg'] if details else 'invalid'}", details)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, e: ClientDisconnect) -> Any:  # nobody to answer: no traceback in the server's log either
        return _error(400, "InvalidInputError", "the client went away before it sent the whole request")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> Any:
        return _error(500, "InternalError", f"the server failed ({type(e).__name__}); its log says more")

    @app.get("/api/v1/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": _version()}

    @app.get("/api/v1/me", tags=["server"])
    def me(request: Request) -> dict[str, Any]:
        """Who the request's token names and what it may do: ``roles`` maps ``kind:name`` (``*`` for every one) to read,
        write or manage. A server that asks for no token answers everyone as an admin (``signed_in`` false)."""
        p: Principal | None = request.state.principal
        if p is None:
            return {"name": None, "admin": True, "signed_in": False, "roles": {}}
        return {"name": p.name, "admin": p.admin, "signed_in": True,
                "roles": {f"{kind}:{name}": role for (kind, name), role in sorted(p.grants.items())}}

    lost = _LostRuns(store, settings.heartbeat_timeout)
    searches = app.state.searches = _Searches()
    for name in CALLS:
        _add_call(app, name, store, gate, run_in_threadpool, Response, lost, searches)
    _add_registry_routes(app, store, artifacts, gate, run_in_threadpool)
    _add_ui_routes(app)
    add_log_routes(app, settings.log_uri, run_in_threadpool, spool)

    def _may(request: Request, what: str) -> None:
        p: Principal | None = request.state.principal
        if p is None:
            return
        if what == "admin":
            p.require_admin("list or delete blobs")
        elif not (p.writes_anything() if what == "write" else p.anything()):
            raise errors.PermissionDeniedError(f"user {p.name!r} may not {what} blobs: it has no role that allows it")

    def _digest(digest: str) -> str:
        if not _DIGEST.fullmatch(digest):
            raise errors.NotFoundError(f"{digest[:80]!r} is not a sha256 digest: blobs are named by the sha256 of their bytes")
        return digest

    @app.head("/api/v1/blobs/{digest}", tags=["artifacts"])
    def blob_exists(digest: str, request: Request) -> Any:
        _may(request, "read")
        if not artifacts.exists(_digest(digest)):
            return Response(status_code=404)
        return Response(status_code=200)

    @app.get("/api/v1/blobs/{digest}", tags=["artifacts"])
    def blob_get(digest: str, request: Request) -> Any:
        _may(request, "read")
        _digest(digest)
        direct = getattr(artifacts, "local_path", None)
        if direct is not None:  # a folder on this machine: the blob's own file, without a copy (the client verifies it)
            path = direct(digest)
            if path is None:
                raise errors.NotFoundError(f"there is no blob {digest}")
            return FileResponse(path, media_type="application/octet-stream")
        fd, name = tempfile.mkstemp(dir=spool, prefix=f".down-{os.getpid()}-")
        os.close(fd)
        try:
            artifacts.download(_digest(digest), name)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return FileResponse(name, media_type="application/octet-stream",
                            background=BackgroundTask(lambda: Path(name).unlink(missing_ok=True)))

    @app.put("/api/v1/blobs/{digest}", tags=["artifacts"], status_code=201)
    async def blob_put(digest: str, request: Request) -> Any:
        _may(request, "write")
        _digest(digest)
        fd, name = tempfile.mkstemp(dir=spool, prefix=f".up-{os.getpid()}-")
        h, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BLOB:
                        raise errors.InvalidInputError(f"a blob may hold at most {MAX_BLOB:,} bytes")
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != digest:
                raise errors.InvalidInputError(f"the bytes sent hash to {h.hexdigest()}, not to the name they were sent "
                                               f"under ({digest}): the upload was cut or changed; send it again")
            adopt = getattr(artifacts, "adopt", None)  # a folder on this machine: the upload moved into place
            if adopt is None or not await run_in_threadpool(adopt, name, digest):
                await run_in_threadpool(artifacts.put_file, name)
            stored = digest
        finally:
            Path(name).unlink(missing_ok=True)
        return JSONResponse({"digest": stored, "size": size}, 201)

    @app.delete("/api/v1/blobs/{digest}", tags=["artifacts"])
    def blob_delete(digest: str, request: Request) -> Any:
        _may(request, "admin")
        artifacts.delete(_digest(digest))
        return Response(status_code=204)

    @app.get("/api/v1/blobs", tags=["artifacts"])
    def blob_list(request: Request) -> Any:
        _may(request, "admin")
        return JSONResponse([list(b) for b in artifacts.iter_blobs()])

    return app


class _LostRuns:
    """Runs whose process stopped sending heartbeats are marked LOST before any call that shows runs' statuses, at most
    every few seconds: a browser on the web UI sees a dead run as LOST, as a Python client does."""

    EVERY = 5.0
    CALLS = frozenset({"search_page", "search_runs", "count_runs", "get_run"})

    def __init__(self, store: Any, timeout: float) -> None:
        self.store, self.timeout = store, timeout
        self._next = 0.0
        self._lock = threading.Lock()

    def check(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return
            self._next = now + self.EVERY
        with contextlib.suppress(errors.StoreError):  # a store busy or read-only now: the next call tries again
            self.store.mark_lost(time.time() - self.timeout)


class _Searches:
    """At most ``PER_USER`` searches of one user in flight at once in this process: a user's further searches are
    answered 429 at once (with Retry-After), without taking a thread, so one user's heavy filters (each stopped after
    SEARCH_SECONDS) cannot take every thread of the server."""

    PER_USER = 4
    CALLS = frozenset({"search_page", "search_runs", "count_runs", "run_keys", "metric_histories"})

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.refused = 0

    @contextlib.contextmanager
    def one(self, principal: Principal | None) -> Iterator[bool]:
        # the server's own token names no user (a user may be called "admin" too): counted apart
        who = ("anonymous", "") if principal is None else ("user" if principal.person else "server", principal.name)
        with self._lock:
            n = self._running.get(who, 0)
            if n >= self.PER_USER:
                self.refused += 1
                yield False
                return
            self._running[who] = n + 1
        try:
            yield True
        finally:
            with self._lock:
                left = self._running[who] - 1
                if left:
                    self._running[who] = left
                else:
                    del self._running[who]


def _add_call(app: Any, name: str, store: Any, gate: Gate, run_in_threadpool: Any, response: Any, lost: _LostRuns,
              searches: _Searches) -> None:
    """``POST /api/v1/store/<name>``: the body is the call's arguments (checked by its pydantic model, which the
    OpenAPI document shows), the answer ``{"value": …}``; the user's roles are checked by the call's access rule."""
    from fastapi import Request

    c = codec(name)
    fn = getattr(store, name)

    shows_status = name in _LostRuns.CALLS

    def call(principal: Principal | None, values: dict[str, Any]) -> Any:
        if shows_status:
            lost.check()
        return _gated(name, fn, gate, principal, values)

    searching = name in _Searches.CALLS

    async def endpoint(body: Any, request: Request) -> Any:
        values = {k: getattr(body, k) for k in type(body).model_fields}
        principal = request.state.principal
        with searches.one(principal) if searching else contextlib.nullcontext(True) as admitted:
            if not admitted:
                who = ("this server's clients" if principal is None else f"user {principal.name!r}" if principal.person
                       else "the server's token")
                return _error(429, "TooManyRequests", f"{who} already has {_Searches.PER_USER} searches running: "
                              "try again when one has finished", headers={"Retry-After": "1"})
            value = await run_in_threadpool(call, principal, values)
        return response(content=c.encode_answer(value), media_type="application/json")

    endpoint.__annotations__ = {"body": c.args, "request": Request, "return": Any}
    endpoint.__name__ = name
    app.add_api_route(f"/api/v1/store/{name}", endpoint, methods=["POST"], tags=[f"store: {CALLS[name]}"],
                      summary=name.replace("_", " "), response_model=None)


def _gated(name: str, fn: Any, gate: Gate, principal: Principal | None, values: dict[str, Any]) -> Any:
    """One store call as ``principal`` may make it: checked by its access rule, its answer filtered by it."""
    c = codec(name)
    sanitize(name, values)
    if principal is None:
        return c.call(fn, values)
    try:
        keep = gate.check(name, principal, values)
    except Answer as a:
        return a.value
    value = c.call(fn, values)
    return keep(value) if keep is not None else value


class _GatedStore:
    """The metadata store as one user may use it: each call goes through the same checks as ``/api/v1/store/<call>``,
    so what the server does for a user (a promotion from the web UI) follows the rules that user's own client would."""

    def __init__(self, store: Any, gate: Gate, principal: Principal | None) -> None:
        self._store, self._gate, self._principal = store, gate, principal

    def __getattr__(self, name: str) -> Any:
        if name not in CALLS:
            raise AttributeError(name)
        fn, signature = getattr(self._store, name), codec(name).signature

        def call(*args: Any, **kwargs: Any) -> Any:
            values = dict(list(signature.bind(None, *args, **kwargs).arguments.items())[1:])
            return _gated(name, fn, self._gate, self._principal, values)

        return call


def _add_registry_routes(app: Any, store: Any, artifacts: Any, gate: Gate, run_in_threadpool: Any) -> None:
    """What the server does for clients that cannot run modelcycle's Python themselves (the web UI): promotion and
    rollback, with the same checks and audit records as ``modelcycle models promote|rollback`` and the user's name as
    the actor, and a dataset's profile as HTML."""
    from fastapi import Request
    from pydantic import BaseModel, ConfigDict, Field

    from modelcycle.registry.registry import Registry

    class Promotion(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a version, "yes" is not true
        version: int = Field(ge=1, le=2**62)
        alias: str = "champion"
        reason: str | None = Field(None, max_length=2000)
        force: bool = False

    class Rollback(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        alias: str = "champion"
        reason: str | None = Field(None, max_length=2000)

    def registry(request: Request, name: str) -> Registry:
        principal: Principal | None = request.state.principal
        if principal is not None:  # moving an alias is a manager's: said first, before anything about the model
            principal.require("model", name, "manage")
        return Registry(_Shim(_GatedStore(store, gate, principal)))  # type: ignore[arg-type]

    def answer(event: Any) -> dict[str, Any]:
        return {k: getattr(event, k) for k in ("id", "name", "alias", "from_version", "to_version", "action", "actor",
                                               "at", "reason", "verdict_id", "forced")}

    @app.get("/api/v1/runs/{run_id}/datasets/{name}/{role}/profile.html", tags=["runs"])
    async def profile_page(run_id: str, name: str, role: str, request: Request) -> Any:
        """The profile of a dataset a run logged, as the HTML report ``Profile.to_html`` writes (for the web UI, which
        shows it in a sandboxed frame); it is served with a policy that runs no script."""
        from fastapi.responses import HTMLResponse

        from modelcycle.data.profile import MAX_PROFILE_BYTES, Profile
        from modelcycle.tracking.run import profile_artifact

        def render() -> str:
            run = _GatedStore(store, gate, request.state.principal).get_run(run_id)
            path = profile_artifact(name, role)
            found = next((a for a in run.artifacts if a.path == path), None)
            if found is None:
                raise errors.NotFoundError(f"run {run.id} has no profile of dataset {name!r} ({role})")
            if found.size > MAX_PROFILE_BYTES:
                raise errors.InvalidInputError(f"the profile of {name!r} holds {found.size:,} bytes, more than a profile may")
            return Profile.from_bytes(artifacts.get_bytes(found.digest)).to_html()

        html = await run_in_threadpool(render)
        return HTMLResponse(html, headers={"Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                                           "X-Content-Type-Options": "nosniff"})

    @app.post("/api/v1/models/{name}/promote", tags=["registry"])
    async def promote(name: str, body: Promotion, request: Request) -> dict[str, Any]:
        """Move ``name@alias`` to a version whose latest verdict passed (``force`` overrides: managers only, recorded)."""
        reg = registry(request, name)
        return answer(await run_in_threadpool(reg.promote, name, body.version, body.alias, None, body.force, body.reason))

    @app.post("/api/v1/models/{name}/rollback", tags=["registry"])
    async def rollback(name: str, body: Rollback, request: Request) -> dict[str, Any]:
        """Move ``name@alias`` back to the version it had before its latest move."""
        reg = registry(request, name)
        return answer(await run_in_threadpool(reg.rollback, name, body.alias, body.reason))


UI_DIR = Path(__file__).parent / "ui"  # the web UI as `make ui` builds it (packaged in the wheel, not in git)
_UI_FILE = re.compile(r"^/(?:|favicon\.svg|assets/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127})$")  # every path the UI serves
# Scripts only from the server's own files (none inline, no eval); styles may be inline for the HTML reports a run
# keeps, which are shown in a sandboxed frame that runs none of their scripts.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
       "connect-src 'self'; frame-src blob:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_UI_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin"}
_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>modelcycle</title></head>
<body><h1>modelcycle server</h1><p>This installation has no web UI: it was installed from source without building it.
Run <code>make ui</code> in a checkout (node and npm needed), or install the wheel. The API answers at
<a href="/api/docs">/api/docs</a>.</p></body></html>"""


def _add_ui_routes(app: Any) -> None:
    """The web UI's files: ``/`` (its page) and ``/assets/<file>`` (scripts and styles, named by their content's hash
    by the build, so they are kept by browsers for a year). Nothing else is served outside ``/api/``."""
    from fastapi import Request
    from fastapi.responses import FileResponse, HTMLResponse, Response

    def page() -> Any:
        index = UI_DIR / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, headers=_UI_HEADERS | {"Cache-Control": "no-store"})
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_UI_HEADERS | {"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def ui_page() -> Any:
        return page()

    @app.get("/favicon.svg", include_in_schema=False)
    def ui_icon() -> Any:
        path = UI_DIR / "favicon.svg"
        return FileResponse(path, media_type="image/svg+xml", headers=_UI_HEADERS) if path.is_file() else Response(status_code=404)

    @app.get("/assets/{name}", include_in_schema=False)
    def ui_asset(name: str, request: Request) -> Any:
        if not _UI_FILE.fullmatch(request.url.path):
            return Response(status_code=404)
        path = UI_DIR / "assets" / name  # a single name of safe characters (checked above): no folder, no ".."
        if not path.is_file():
            return Response(status_code=404)
        kind = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                ".woff2": "font/woff2"}.get(path.suffix)
        if kind is None:
            return Response(status_code=404)
        return FileResponse(path, media_type=kind, headers=_UI_HEADERS | {"Cache-Control": "public, max-age=31536000, immutable"})


class _Shim:
    """What the registry needs of a client to move aliases: its store."""

    def __init__(self, store: Any) -> None:
        self.store = store


_SERVER_TOKEN = Principal("admin", admin=True, person=False)


class _NoSniff:
    """ASGI middleware: every answer says ``X-Content-Type-Options: nosniff``, so a browser never runs a stored blob (an
    ``application/octet-stream``) as a script or a page, whatever its bytes look like."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, sending)


class _Authenticate:
    """ASGI middleware: the request's user in ``request.state.principal``, or a 401 (``/api/v1/health`` is open)."""

    def __init__(self, app: Any, who: "_Authenticator", run_in_threadpool: Any) -> None:
        self.app, self.who, self.run_in_threadpool = app, who, run_in_threadpool

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal = None
        path = scope.get("path", "")
        if path.startswith("/api/v1/store/"):
            length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
            if length is None or not length.isdigit() or int(length) > MAX_CALL:
                response = _error(413 if length is not None and length.isdigit() else 411, "InvalidInputError",
                                  f"a call's body needs a Content-Length of at most {MAX_CALL:,} bytes")
                await response(scope, receive, send)
                return
        if path != "/api/v1/health" and not (scope.get("method") in ("GET", "HEAD") and _UI_FILE.fullmatch(path)):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), "")
            given = header[7:] if header.lower().startswith("bearer ") else None
            try:
                found = self.who.cached(given)
                known, principal = found if found is not None else await self.run_in_threadpool(self.who.principal, given)
            except errors.ModelcycleError as e:
                await _error(_status(e), type(e).__name__, str(e))(scope, receive, send)
                return
            if not known:
                message = ("this server needs a token: set MODELCYCLE_TRACKING_TOKEN to yours (an admin makes one with "
                           "`modelcycle server users add <name>`)") if given is None else (
                    "the token in MODELCYCLE_TRACKING_TOKEN is not one this server knows (revoked, rotated or mistyped); "
                    "an admin gives a new one with `modelcycle server users rotate <name>`")
                response = _error(401, "Unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class _Authenticator:
    """A request's token → its user. The server's own token is an admin's; a user's token is looked up by its sha256.
    Answers are kept for two seconds, so a revoked token stops working everywhere within two seconds. While there is no
    server token and no user was ever added, anyone is answered as an admin."""

    TTL = 2.0

    def __init__(self, store: Any, token: str | None, no_auth: bool) -> None:
        self.store, self.token, self.no_auth = store, token, no_auth
        self._known: dict[str, tuple[float, Principal | None]] = {}  # token digest → (until, user or None)
        self._open: tuple[float, bool] = (0.0, False)  # (until, whether a request without a token is answered)
        self._lock = threading.Lock()

    def cached(self, given: str | None) -> tuple[bool, Principal | None] | None:
        """(known, principal) when that needs no query, else None; principal None means nothing is checked."""
        if self.no_auth:
            return True, None
        now = time.monotonic()
        if given is None:
            if self.token is not None:
                return False, None
            until, open_ = self._open
            return (open_, None) if until > now else None
        if self.token is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return True, _SERVER_TOKEN
        hit = self._known.get(hashlib.sha256(given.encode()).hexdigest())
        return (hit[1] is not None, hit[1]) if hit is not None and hit[0] > now else None

    def principal(self, given: str | None) -> tuple[bool, Principal | None]:
        """``cached``, asking the store when it has no answer."""
        answer = self.cached(given)
        if answer is not None:
            return answer
        until = time.monotonic() + self.TTL
        if given is None:
            open_ = not self.store.users_exist()
            self._open = (until, open_)
            return open_, None
        digest = hashlib.sha256(given.encode()).hexdigest()
        found = self.store.user_by_token(digest)
        principal = None if found is None else Principal(found[0], found[1], found[2])
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (until, principal)
        return principal is not None, principal


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelcycle")
    except PackageNotFoundError:
        return "0+unknown"
