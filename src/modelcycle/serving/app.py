"""The prediction server: Open Inference Protocol, MLflow-compatible and plain JSON routes, on FastAPI.

``create_app(settings, "models:/churn@champion")`` builds it; ``modelcycle serve`` runs it on uvicorn.
Every answer carries ``X-Request-ID`` and ``X-Model-Version``; every prediction is logged (see
``predlog``); client mistakes get a 4xx in the route's protocol shape and never a stack trace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import itertools
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from modelcycle.errors import InvalidInputError, SignatureError
from modelcycle.serving.bodies import ClientError, fast_numeric, from_mlflow, from_oip, from_predict, parse_json, to_oip

__all__ = ["ServeConfig", "create_app"]

log = logging.getLogger("modelcycle.serving")


class ServeConfig:
    """How the server behaves; the CLI fills it from its options."""

    def __init__(self, token: str | None = None, max_queue: int = 64, max_body_mb: float = 10.0, log_predictions: bool = True,
                 poll_seconds: float = 1.0, trust: bool = False, threads: int | None = None, freeze_gc: bool = True):
        self.token = token
        self.max_queue = max_queue
        self.max_body = int(max_body_mb * 1024 * 1024)
        self.log_predictions = log_predictions
        self.poll_seconds = poll_seconds
        self.trust = trust
        # One thread by default: Python-bound predictions do not run in parallel anyway (the GIL), and
        # several threads only take turns mid-request, which stretches the slowest answers.
        self.threads = threads or 1
        self.freeze_gc = freeze_gc  # off when the server shares its process with other work (the demo)


def _dumps(data: Any) -> bytes:
    try:
        import orjson

        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY, default=str)  # NaN and inf become null
    except ImportError:
        return json.dumps(data, allow_nan=False, separators=(",", ":"), default=str).encode()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, media_type="application/json", headers=headers)


def _clean(values: Any) -> list[Any]:
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in out]


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("modelcycle_requests", "Requests answered", ["route", "code"], registry=self.registry)
        self.errors = Counter("modelcycle_errors", "Requests answered with an error", ["route", "kind"], registry=self.registry)
        self.latency = Histogram("modelcycle_request_seconds", "Time to answer a prediction request", ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.rows = Counter("modelcycle_predicted_rows", "Rows predicted", ["role"], registry=self.registry)
        self.prediction = Histogram("modelcycle_prediction_value", "Predicted values (or the positive class' probability)",
                                    registry=self.registry, buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 10, 100, 1000))
        self.version = Gauge("modelcycle_model_version", "Version being served", ["model"], registry=self.registry)
        self.swap_failures = Gauge("modelcycle_swap_failures", "New versions that failed to load and were not served",
                                   registry=self.registry)
        self.dropped = Gauge("modelcycle_prediction_log_dropped", "Predicted rows the log could not keep up with",
                             registry=self.registry)
        self.rejected = Counter("modelcycle_overload_rejections", "Requests answered 503 because the queue was full",
                                registry=self.registry)


def create_app(settings: Any, model_uri: str, shadow_uri: str | None = None, config: ServeConfig | None = None,
               client: Any = None) -> FastAPI:
    """The FastAPI application serving ``model_uri`` (and predicting with ``shadow_uri`` off the response path)."""
    from modelcycle.registry import Registry
    from modelcycle.serving.holder import ModelHolder
    from modelcycle.serving.predlog import PredictionLog, write_labels
    from modelcycle.tracking.client import Client

    cfg = config or ServeConfig()
    client = client or Client(settings)
    registry = Registry(client)
    holder = ModelHolder(registry, model_uri, trust=cfg.trust, poll=cfg.poll_seconds)
    shadow = ModelHolder(registry, shadow_uri, trust=cfg.trust, poll=cfg.poll_seconds) if shadow_uri else None
    predlog = PredictionLog(os.path.join(str(settings.home), "")) if cfg.log_predictions else None
    metrics = _Metrics()
    pool = cf.ThreadPoolExecutor(max_workers=cfg.threads, thread_name_prefix="modelcycle-predict")
    shadow_pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelcycle-shadow")
    state = {"ready": False, "inflight": 0, "shadow_pending": 0}
    try:
        from sklearn import config_context as sklearn_config
    except ImportError:  # a server for non-scikit-learn models
        sklearn_config = None
    lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        holder.start()
        if shadow is not None:
            shadow.start()
        # Everything loaded so far (libraries, the model) lives as long as the server: keep it out of the
        # garbage collector's full passes, which would otherwise stall requests now and then.
        if cfg.freeze_gc:
            gc.collect()
            gc.freeze()
        state["ready"] = True
        yield
        state["ready"] = False  # readiness first; uvicorn has stopped accepting and lets in-flight requests finish
        holder.stop()
        if shadow is not None:
            shadow.stop()
        pool.shutdown(wait=True)
        shadow_pool.shutdown(wait=True)
        if predlog is not None:
            predlog.close()
        client.close()

    app = FastAPI(title="modelcycle model server", version=_version(), lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.holder, app.state.shadow, app.state.predlog, app.state.metrics, app.state.config = holder, shadow, predlog, metrics, cfg

    # --- helpers ------------------------------------------------------------------------------------------
    # generated request ids: random per process (workers and restarts never collide), then a counter (no syscall per request)
    id_prefix, id_counter = uuid.uuid4().hex[:20], itertools.count()

    def request_id(request: Request) -> str:
        given = request.headers.get("x-request-id", "")
        return given if 0 < len(given) <= 128 and given.isprintable() else f"{id_prefix}{next(id_counter):012x}"

    def authorised(request: Request) -> bool:
        if not cfg.token:
            return True
        header = request.headers.get("authorization", "")
        return header == f"Bearer {cfg.token}"

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cfg.max_body:
            raise ClientError(413, f"the body is {int(declared):,} bytes; the limit is {cfg.max_body:,} (--max-body-mb)", "too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_body:
                raise ClientError(413, f"the body is over the limit of {cfg.max_body:,} bytes (--max-body-mb)", "too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    derive: dict[str, list[int]] = {}  # per model hash: [agreeing requests, disagreeing requests]
    numeric_inputs: dict[str, Any] = {}  # per model hash: (columns, nullable) when every input is a double, else None

    def _numeric_columns(signature: Any) -> Any:
        import pandas as pd

        if signature is None or not all(c.type == "double" for c in signature.inputs):
            return None
        # an object-dtype index made once: scikit-learn reads the names on every call, and string-array indexes convert slowly
        return pd.Index(signature.input_names, dtype=object), [c.nullable for c in signature.inputs]

    def run_model(model: Any, prepared: Any, want_proba: bool) -> tuple[Any, Any]:
        """predict (and predict_proba); once a classifier's predict has matched the argmax of its
        probabilities on 20 requests, predict is taken from the probabilities (one model pass, not two)."""
        import numpy as np

        raw = model.raw
        if not model.manifest.has_predict_proba:
            return np.asarray(raw.predict(prepared)), None
        seen = derive.setdefault(model.hash, [0, 0])
        classes = getattr(raw, "classes_", None)
        if classes is not None and seen[1] == 0 and seen[0] >= 20:
            proba = np.asarray(raw.predict_proba(prepared), dtype=float)
            return np.asarray(classes)[proba.argmax(axis=1)], proba
        prediction = np.asarray(raw.predict(prepared))
        if not want_proba and seen[0] >= 20:
            return prediction, None
        proba = np.asarray(raw.predict_proba(prepared), dtype=float)
        if classes is not None:
            same = np.array_equal(np.asarray(classes)[proba.argmax(axis=1)], prediction)
            seen[0 if same else 1] += 1
        return prediction, proba

    def predict(body: dict[str, Any], parse: Callable[[dict[str, Any]], Any], rid: str, want_proba: bool = True) -> dict[str, Any]:
        import numpy as np

        model = holder.current  # one read: this request stays on this version even if a swap happens now
        signature = model.signature
        extra: list[str] = []
        frame = None
        numeric = numeric_inputs.get(model.hash, False)
        if numeric is False:
            numeric = numeric_inputs[model.hash] = _numeric_columns(signature)
        if numeric is not None and parse is not from_oip and not (parse is from_mlflow and "records" in body):
            frame = fast_numeric(body, *numeric)  # finite, typed and complete: already checked
        array = None
        if frame is not None:
            checked = frame
            array = frame.to_numpy()  # the block the frame was made from, not a copy
        else:
            if signature is not None:
                frame = parse(body)
                extra = signature.extra_columns(frame)
                checked = signature.check(frame.drop(columns=extra) if extra else frame)
            else:
                checked = parse(body)
            floats = [c for c, dtype in checked.dtypes.items() if dtype.kind == "f"]
            if floats:
                infinite = np.isinf(checked[floats].to_numpy()).any(axis=0)
                bad = [c for c, hit in zip(floats, infinite, strict=True) if hit]
                if bad:
                    raise ClientError(400, f"infinite values in {', '.join(bad)}; send finite numbers (or null where the column allows it)",
                                      "invalid_value", {"columns": bad})
        start = time.perf_counter()
        prepared = model.prepare(checked, checked=True)
        if sklearn_config is not None and model.flavour == "sklearn":
            with sklearn_config(assume_finite=True):  # checked above
                prediction, proba = run_model(model, prepared, want_proba)
        else:
            prediction, proba = run_model(model, prepared, want_proba)
        latency = (time.perf_counter() - start) * 1000.0
        version = model.version.version if model.version is not None else None
        classes = [str(c) for c in getattr(model.raw, "classes_", [])] if proba is not None else []
        metrics.rows.labels("champion").inc(len(checked))
        sample = proba[:20, 1] if proba is not None and proba.shape[1] == 2 else prediction[:20] if prediction.dtype.kind in "fiu" else ()
        for v in sample:
            metrics.prediction.observe(float(v))
        if predlog is not None:
            predlog_add(checked, rid, version, "champion", latency, prediction, proba, classes, array)
        if shadow is not None:
            submit_shadow(checked, rid)
        return {"prediction": prediction, "proba": proba if want_proba else None, "version": version, "extra": extra,
                "classes": classes, "model_ms": latency}

    def predlog_add(checked: Any, rid: str, version: int | None, role: str, latency: float, prediction: Any,
                    proba: Any, classes: list[str], array: Any = None) -> None:
        record = {"request_id": rid, "time": time.time(), "model": holder.name, "version": version if version is not None else -1,
                  "role": role, "latency_ms": latency, "inputs": checked, "prediction": prediction, "proba": proba, "classes": classes,
                  "array": array}
        if not predlog.add(record):  # type: ignore[union-attr]  (built into rows by the writer thread, off the request path)
            metrics.dropped.set(predlog.dropped)  # type: ignore[union-attr]

    def submit_shadow(checked: Any, rid: str) -> None:
        with lock:
            if state["shadow_pending"] >= 100:
                return  # the challenger cannot keep up: skip rather than slow the champion down
            state["shadow_pending"] += 1

        def run() -> None:
            import numpy as np

            try:
                model = shadow.current  # type: ignore[union-attr]
                start = time.perf_counter()
                prepared = model.prepare(checked)
                prediction = np.asarray(model.raw.predict(prepared))
                proba = np.asarray(model.raw.predict_proba(prepared), dtype=float) if model.manifest.has_predict_proba else None
                classes = [str(c) for c in getattr(model.raw, "classes_", [])] if proba is not None else []
                version = model.version.version if model.version is not None else None
                metrics.rows.labels("shadow").inc(len(checked))
                if predlog is not None:
                    predlog_add(checked, rid, version, "shadow", (time.perf_counter() - start) * 1000, prediction, proba, classes)
            except Exception as e:  # the shadow never affects answers
                metrics.errors.labels("shadow", type(e).__name__).inc()
            finally:
                with lock:
                    state["shadow_pending"] -= 1

        shadow_pool.submit(run)

    async def serve(request: Request, route: str, parse: Callable[[dict[str, Any]], Any], answer: Callable[..., Any],
                    error: Callable[[ClientError], Response], want_proba: bool = True) -> Response:
        rid = request_id(request)
        started = time.perf_counter()
        base = {"X-Request-ID": rid}
        try:
            if not authorised(request):
                raise ClientError(401, "this endpoint needs the server's token: send 'Authorization: Bearer <token>'", "unauthorized")
            with lock:
                if state["inflight"] >= cfg.max_queue:
                    metrics.rejected.inc()
                    raise ClientError(503, f"the server is busy ({cfg.max_queue} requests queued); retry shortly", "overloaded",
                                      headers={"Retry-After": "1"})
                state["inflight"] += 1
            try:
                body = parse_json(await read_body(request), request.headers.get("content-type"))
                loop = asyncio.get_running_loop()
                t_predict = time.perf_counter()
                out = await loop.run_in_executor(pool, predict, body, parse, rid, want_proba)
                t_predict = time.perf_counter() - t_predict
            finally:
                with lock:
                    state["inflight"] -= 1
            headers = {**base, "X-Model-Version": str(out["version"]),
                       "Server-Timing": f"model;dur={out['model_ms']:.2f}, predict;dur={t_predict * 1000:.2f}, "
                                        f"total;dur={(time.perf_counter() - started) * 1000:.2f}"}
            if out["extra"]:
                headers["X-Modelcycle-Warning"] = "ignored columns the model does not use: " + ", ".join(out["extra"])[:500]
            response = _json(answer(out, rid), 200, headers)
            metrics.requests.labels(route, "200").inc()
            return response
        except ClientError as e:
            metrics.requests.labels(route, str(e.status)).inc()
            metrics.errors.labels(route, e.code).inc()
            response = error(e)
            response.headers.update({**base, **e.headers})
            return response
        except SignatureError as e:
            metrics.requests.labels(route, "400").inc()
            metrics.errors.labels(route, "signature").inc()
            response = error(ClientError(400, str(e), "signature_mismatch", {"columns": e.problems}))
            response.headers.update(base)
            return response
        except Exception as e:  # a bug or a model failure: logged, answered without internals
            log.exception("request %s failed", rid)
            metrics.requests.labels(route, "500").inc()
            metrics.errors.labels(route, "internal").inc()
            response = error(ClientError(500, f"the model failed on this input ({type(e).__name__}); see the server log, request {rid}",
                                         "internal"))
            response.headers.update(base)
            return response
        finally:
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    # --- error shapes -------------------------------------------------------------------------------------
    def ours(e: ClientError) -> Response:
        return _json({"error": {"code": e.code, "message": e.message, "details": e.details}}, e.status)

    def oip(e: ClientError) -> Response:
        return _json({"error": e.message}, e.status)

    def mlflow(e: ClientError) -> Response:
        code = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 413: "BAD_REQUEST", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE",
                500: "INTERNAL_ERROR"}.get(e.status, "BAD_REQUEST")
        return _json({"error_code": code, "message": e.message}, e.status)

    # --- answers ------------------------------------------------------------------------------------------
    def answer_predict(out: dict[str, Any], rid: str) -> dict[str, Any]:
        data: dict[str, Any] = {"predictions": _clean(out["prediction"]), "model": holder.name, "version": out["version"], "request_id": rid}
        if out["proba"] is not None:
            data["probabilities"] = [_clean(row) for row in out["proba"]]
            data["classes"] = out["classes"]
        return data

    def answer_mlflow(out: dict[str, Any], rid: str) -> dict[str, Any]:
        return {"predictions": _clean(out["prediction"])}

    def answer_oip(out: dict[str, Any], rid: str) -> dict[str, Any]:
        return to_oip(holder.name, out["version"], rid, out["prediction"], out["proba"])

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
        "request_ids", "labels"], "properties": {"request_ids": {"type": "array", "items": {"type": "string"}}, "labels": {"type": "array"}}}}}}}

    @app.post("/predict", tags=["predict"], summary="Predict from records, columns, or MLflow's dataframe bodies", openapi_extra=predict_body)
    async def predict_route(request: Request) -> Response:
        return await serve(request, "predict", from_predict, answer_predict, ours)

    @app.post("/invocations", tags=["mlflow"], summary="MLflow-compatible scoring", openapi_extra=mlflow_body)
    async def invocations(request: Request) -> Response:
        return await serve(request, "invocations", from_mlflow, answer_mlflow, mlflow, want_proba=False)  # MLflow answers predictions only

    @app.post("/v2/models/{name}/infer", tags=["open inference protocol"], openapi_extra=oip_body)
    async def infer(name: str, request: Request) -> Response:
        if name != holder.name:
            return _json({"error": f"this server serves model {holder.name!r}, not {name!r}"}, 404)
        return await serve(request, "infer", from_oip, answer_oip, oip)

    @app.get("/v2/health/live", tags=["open inference protocol"])
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["open inference protocol"])
    async def ready() -> Response:
        return _json({"ready": state["ready"]}, 200 if state["ready"] else 503)

    @app.get("/v2/models/{name}", tags=["open inference protocol"])
    async def metadata(name: str) -> Response:
        if name != holder.name:
            return _json({"error": f"this server serves model {holder.name!r}, not {name!r}"}, 404)
        model = holder.current
        inputs = [{"name": c.name, "datatype": _oip_datatype(c.type), "shape": [-1]} for c in (model.signature.inputs if model.signature else ())]
        outputs = [{"name": "predict", "datatype": "BYTES" if not model.signature or not model.signature.outputs
                    else _oip_datatype(model.signature.outputs[0].type), "shape": [-1]}]
        if model.manifest.has_predict_proba:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return _json({"name": holder.name, "versions": [str(holder.version)] if holder.version else [], "platform": model.flavour,
                      "inputs": inputs, "outputs": outputs})

    @app.get("/v2/models/{name}/ready", tags=["open inference protocol"])
    async def model_ready(name: str) -> Response:
        if name != holder.name:
            return _json({"error": f"this server serves model {holder.name!r}, not {name!r}"}, 404)
        return _json({"name": name, "ready": state["ready"]}, 200 if state["ready"] else 503)

    @app.get("/ping", tags=["mlflow"])
    async def ping() -> Response:
        return Response("\n", status_code=200 if state["ready"] else 503, media_type="text/plain")

    @app.get("/health", tags=["predict"])
    async def health() -> Response:
        return _json({"status": "ok" if state["ready"] else "starting", **holder.describe()}, 200 if state["ready"] else 503)

    @app.get("/version", tags=["predict"])
    async def version() -> Response:
        data = {"modelcycle": _version(), "model": holder.describe()}
        if shadow is not None:
            data["shadow"] = shadow.describe()
        return _json(data)

    @app.get("/metrics", tags=["predict"])
    async def metrics_route() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.version.labels(holder.name).set(holder.version or 0)
        metrics.swap_failures.set(holder.failures + (shadow.failures if shadow else 0))
        if predlog is not None:
            metrics.dropped.set(predlog.dropped)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/labels", tags=["predict"], summary="Ground truth for earlier predictions, by request id", openapi_extra=labels_body)
    async def labels(request: Request) -> Response:
        rid = request_id(request)
        try:
            if not authorised(request):
                raise ClientError(401, "this endpoint needs the server's token: send 'Authorization: Bearer <token>'", "unauthorized")
            body = parse_json(await read_body(request), request.headers.get("content-type"))
            ids, values = body.get("request_ids"), body.get("labels")
            if not isinstance(ids, list) or not isinstance(values, list) or len(ids) != len(values) or not ids:
                raise ClientError(400, "send {\"request_ids\": [...], \"labels\": [...]} with one label per request id", "bad_shape")
            rows = body.get("rows")
            if rows is not None and (not isinstance(rows, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows)):
                raise ClientError(400, "rows, when given, must be a list of whole numbers (the row of each label in its request)", "bad_shape")
            try:
                if predlog is not None:  # the predictions being labelled may still be queued
                    await asyncio.get_running_loop().run_in_executor(None, predlog.flush)
                stored = write_labels(settings.home, holder.name, [str(i) for i in ids], values, rows)
            except InvalidInputError as e:
                raise ClientError(400, str(e), "bad_labels") from None
            return _json({"stored": stored}, 200, {"X-Request-ID": rid})
        except ClientError as e:
            response = ours(e)
            response.headers["X-Request-ID"] = rid
            return response

    return app


def _oip_datatype(kind: str) -> str:
    return {"double": "FP64", "long": "INT64", "boolean": "BOOL"}.get(kind, "BYTES")


def _version() -> str:
    import sys

    return sys.modules["modelcycle"].__version__  # the package is imported already; importing it here would cross layers
