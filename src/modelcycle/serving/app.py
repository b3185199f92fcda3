"""The prediction server's routes: Open Inference Protocol, MLflow-compatible and plain JSON, on FastAPI.

``create_app(settings, "models:/churn@champion")`` builds it; ``modelcycle serve`` runs it on uvicorn.
The routes only translate protocols: checks at the door are in :mod:`~modelcycle.serving.http`, what
a prediction is in :class:`~modelcycle.serving.model_server.ModelServer`. Every answer carries
``X-Request-ID`` and ``X-Model-Version``; client mistakes get a 4xx in the route's protocol shape and
never a stack trace.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from modelcycle.serving.bodies import ClientError, parse_json, plain, to_oip
from modelcycle.serving.http import (
    HostGuard,
    authorised,
    error_response,
    header_text,
    is_loopback,
    json_response,
    read_body,
    request_id,
    require_json,
    shape_for,
)
from modelcycle.serving.model_server import ModelServer, Prediction, ServeConfig

__all__ = ["ServeConfig", "create_app"]

log = logging.getLogger("modelcycle.serving")

_UNAUTHORISED = "this endpoint needs the server's token: send 'Authorization: Bearer <token>'"


def create_app(settings: Any, model_uri: str, shadow_uri: str | None = None, config: ServeConfig | None = None,
               client: Any = None) -> FastAPI:
    """The FastAPI application serving ``model_uri`` (and predicting with ``shadow_uri`` off the response path)."""
    cfg = config or ServeConfig()
    server = ModelServer(settings, model_uri, shadow_uri, cfg, client)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        server.start()
        # Everything loaded so far (libraries, the model) lives as long as the server: keep it out of the
        # garbage collector's full passes, which would otherwise stall requests now and then.
        if cfg.freeze_gc:
            gc.collect()
            gc.freeze()
        yield
        server.stop()  # readiness first; uvicorn has stopped accepting and lets in-flight requests finish

    app = FastAPI(title="modelcycle model server", version=_version(), lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.server = server
    app.state.holder, app.state.shadow, app.state.predlog, app.state.metrics, app.state.config = (
        server.holder, server.shadow, server.predlog, server.metrics, cfg)
    if cfg.allowed_hosts or is_loopback(cfg.host):  # a loopback bind answers only for loopback names: no DNS rebinding
        app.add_middleware(HostGuard, allowed=cfg.allowed_hosts, on_refuse=lambda reason: server.metrics.refused.labels(reason).inc())
    metrics = server.metrics

    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> Response:  # unknown routes and methods, in the route's error shape
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "bad_request")
        words = {404: f"no route {header_text(request.url.path, 100)}; see /docs",
                 405: f"{request.method} is not allowed on {header_text(request.url.path, 100)}; see /docs"}
        return error_response(shape_for(request.url.path), ClientError(e.status_code, words.get(e.status_code, str(e.detail)), code),
                              request_id(request.headers))

    async def body_of(request: Request) -> bytes:
        """The checks before a request costs anything: token, content type, body within its size and time (parsed later,
        off the event loop, so that a large body never holds up other connections)."""
        if not authorised(request.headers.get("authorization"), cfg.token):
            metrics.refused.labels("token").inc()
            raise ClientError(401, _UNAUTHORISED, "unauthorized")
        require_json(request.headers.get("content-type"))
        try:
            return await read_body(request, cfg.max_body, cfg.body_timeout)
        except ClientError as e:
            metrics.refused.labels(e.code).inc()
            raise

    async def serve(request: Request, route: str, protocol: str, answer: Callable[[Prediction, str], Any], shape: str,
                    want_proba: bool = True) -> Response:
        rid = request_id(request.headers)
        started = time.perf_counter()
        try:
            raw = await body_of(request)  # read before a queue slot is taken: a slow body holds only its own connection
            with server.slot():
                t_predict = time.perf_counter()
                out = await asyncio.get_running_loop().run_in_executor(server.pool, server.predict_raw, raw, protocol, rid, want_proba)
                t_predict = time.perf_counter() - t_predict
            headers = {"X-Request-ID": rid, "X-Model-Version": str(out.version),
                       "Server-Timing": f"model;dur={out.model_ms:.2f}, predict;dur={t_predict * 1000:.2f}, "
                                        f"total;dur={(time.perf_counter() - started) * 1000:.2f}"}
            if out.extra_count:
                more = f" and {out.extra_count - len(out.extra)} more" if out.extra_count > len(out.extra) else ""
                headers["X-Modelcycle-Warning"] = header_text("ignored columns the model does not use: "
                                                              + ", ".join(f"'{n}'" for n in out.extra) + more)
            response = json_response(answer(out, rid), 200, headers)
            metrics.requests.labels(route, "200").inc()
            return response
        except ClientError as e:
            metrics.requests.labels(route, str(e.status)).inc()
            metrics.errors.labels(route, e.code).inc()
            return error_response(shape, e, rid)
        except Exception as e:  # a bug or a model failure: logged, answered without internals
            log.exception("request %s failed", rid)
            metrics.requests.labels(route, "500").inc()
            metrics.errors.labels(route, "internal").inc()
            return error_response(shape, ClientError(500, f"the model failed on this input ({type(e).__name__}); see the server log, "
                                                          f"request {rid}", "internal"), rid)
        finally:
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    # --- answers ------------------------------------------------------------------------------------------
    def answer_predict(out: Prediction, rid: str) -> dict[str, Any]:
        data: dict[str, Any] = {"predictions": plain(out.prediction), "model": server.name, "version": out.version, "request_id": rid}
        if out.proba is not None:
            data["probabilities"] = [plain(row) for row in out.proba]
            data["classes"] = out.classes
        return data

    def answer_mlflow(out: Prediction, rid: str) -> dict[str, Any]:
        return {"predictions": plain(out.prediction)}

    def answer_oip(out: Prediction, rid: str) -> dict[str, Any]:
        return to_oip(server.name, out.version, rid, out.prediction, out.proba)

    def wrong_model(name: str) -> Response:
        return json_response({"error": f"this server serves model {server.name!r}, not {header_text(name, 100)!r}"}, 404)

    # --- routes (bodies are read raw, to answer mistakes in each protocol's shape; their schemas are documented) ---
    rows_schema = {"type": "array", "items": {"type": "object"}}
    predict_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
        "records": rows_schema, "columns": {"type": "object", "additionalProperties": {"type": "array"}},
        "dataframe_split": {"type": "object"}, "dataframe_records": rows_schema}}}}}}
    mlflow_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
        "dataframe_split": {"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                                             "data": {"type": "array", "items": {"type": "array"}}}},
        "dataframe_records": rows_schema}}}}}}
    oip_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "data"],
            "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string"}, "data": {"type": "array"}}}}}}}}}}
    labels_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": [
        "request_ids", "labels"], "properties": {"request_ids": {"type": "array", "items": {"type": "string"}}, "labels": {"type": "array"},
        "rows": {"type": "array", "items": {"type": "integer", "minimum": 0}}}}}}}}

    @app.post("/predict", tags=["predict"], summary="Predict from records, columns, or MLflow's dataframe bodies", openapi_extra=predict_body)
    async def predict_route(request: Request) -> Response:
        return await serve(request, "predict", "predict", answer_predict, "ours")

    @app.post("/invocations", tags=["mlflow"], summary="MLflow-compatible scoring", openapi_extra=mlflow_body)
    async def invocations(request: Request) -> Response:
        return await serve(request, "invocations", "mlflow", answer_mlflow, "mlflow", want_proba=False)  # MLflow answers predictions only

    @app.post("/v2/models/{name}/infer", tags=["open inference protocol"], openapi_extra=oip_body)
    async def infer(name: str, request: Request) -> Response:
        if name != server.name:
            return wrong_model(name)
        return await serve(request, "infer", "oip", answer_oip, "oip")

    @app.get("/v2/health/live", tags=["open inference protocol"])
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["open inference protocol"])
    async def ready() -> Response:
        return json_response({"ready": server.ready}, 200 if server.ready else 503)

    @app.get("/v2/models/{name}", tags=["open inference protocol"])
    async def metadata(name: str) -> Response:
        if name != server.name:
            return wrong_model(name)
        return json_response(server.metadata())

    @app.get("/v2/models/{name}/ready", tags=["open inference protocol"])
    async def model_ready(name: str) -> Response:
        if name != server.name:
            return wrong_model(name)
        return json_response({"name": name, "ready": server.ready}, 200 if server.ready else 503)

    @app.get("/ping", tags=["mlflow"])
    async def ping() -> Response:
        return Response("\n", status_code=200 if server.ready else 503, media_type="text/plain")

    @app.get("/health", tags=["predict"])
    async def health() -> Response:
        return json_response({"status": "ok" if server.ready else "starting", **server.holder.describe()}, 200 if server.ready else 503)

    @app.get("/version", tags=["predict"])
    async def version() -> Response:
        return json_response({"modelcycle": _version(), **server.describe()})

    @app.get("/metrics", tags=["predict"])
    async def metrics_route() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        server.refresh_metrics()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/labels", tags=["predict"], summary="Ground truth for earlier predictions, by request id", openapi_extra=labels_body)
    async def labels(request: Request) -> Response:
        rid = request_id(request.headers)
        try:
            raw = await body_of(request)
            stored = await asyncio.get_running_loop().run_in_executor(None, lambda: server.labels(parse_json(raw)))
            return json_response({"stored": stored}, 200, {"X-Request-ID": rid})
        except ClientError as e:
            return error_response("ours", e, rid)

    return app


def _version() -> str:
    from modelcycle._deps import version

    return version()
