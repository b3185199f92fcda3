"""What a model server does, without HTTP: rows in, the model's own answer out, the shadow, the prediction log, the metrics.

Routes only translate protocols; tests drive :class:`ModelServer` directly.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelcycle.errors import ArtifactError, InvalidInputError, PermissionDeniedError, SignatureError
from modelcycle.serving.bodies import ClientError, Parsed, frame_from_body, parse_json

__all__ = ["ModelServer", "Prediction", "ServeConfig", "derives_predict"]

log = logging.getLogger("modelcycle.serving")


class ServeConfig:
    """How the server behaves; the CLI fills it from its options.

    Args:
        token: bearer token the prediction and label routes require (None: none).
        max_queue: requests being predicted at once before new ones get 503.
        max_body_mb: largest body accepted.
        body_timeout: seconds a body may take to arrive (slower ones get 408, before they take a queue slot).
        log_predictions: keep the prediction log.
        poll_seconds: how often the alias is checked.
        trust: allow pickled PythonModel versions to load.
        trusted_types: types model files may build beyond the library allow-list (added to MODELCYCLE_TRUSTED_TYPES).
        threads: prediction threads.
        freeze_gc: keep what is loaded at start out of the garbage collector's full passes.
        host: the address the server listens on; a loopback bind answers only for loopback Host headers.
        allowed_hosts: Host header values to answer for instead (a proxy's public name); ``*`` for any.
    """

    def __init__(self, token: str | None = None, max_queue: int = 64, max_body_mb: float = 10.0, log_predictions: bool = True,
                 poll_seconds: float = 1.0, trust: bool = False, threads: int | None = None, freeze_gc: bool = True,
                 body_timeout: float = 30.0, host: str = "127.0.0.1", allowed_hosts: Sequence[str] | None = None,
                 trusted_types: Sequence[str] = ()):
        self.token = token
        self.max_queue = max_queue
        self.max_body = int(max_body_mb * 1024 * 1024)
        self.body_timeout = body_timeout
        self.log_predictions = log_predictions
        self.poll_seconds = poll_seconds
        self.trust = trust
        self.trusted_types = tuple(trusted_types)
        # One thread by default: Python-bound predictions do not run in parallel anyway (the GIL), and
        # several threads only take turns mid-request, which stretches the slowest answers.
        self.threads = threads or 1
        self.freeze_gc = freeze_gc  # off when the server shares its process with other work (the demo)
        self.host = host
        self.allowed_hosts = list(allowed_hosts) if allowed_hosts else None


@dataclass
class Prediction:
    """One request's answer: what ``predict`` returned (and ``predict_proba``, when asked for and the model has it)."""

    prediction: Any
    proba: Any
    classes: list[str]
    version: int | None
    extra: list[str] = field(default_factory=list)
    extra_count: int = 0
    model_ms: float = 0.0


def derives_predict(raw: Any) -> bool:
    """Whether ``raw.predict(X)`` is, by its own code, ``classes_[argmax(raw.predict_proba(X))]``: then one pass gives both.

    True only for scikit-learn's single-output forests (alone or last in a Pipeline) whose ``predict`` is the library's
    own: their ``predict`` calls ``predict_proba`` and takes the argmax. Everything else runs ``predict`` itself.
    """
    try:
        from sklearn.ensemble._forest import ForestClassifier
        from sklearn.pipeline import Pipeline
    except ImportError:
        return False
    model = raw
    if type(model).predict is Pipeline.predict and type(model).predict_proba is Pipeline.predict_proba:
        model = model.steps[-1][1]
    return type(model).predict is ForestClassifier.predict and getattr(model, "n_outputs_", 2) == 1


class ModelServer:
    """The served model (and its shadow), following their aliases; predictions checked, exact, logged and counted.

    Example:
        >>> server = ModelServer(settings, "models:/churn@champion")            # doctest: +SKIP
        >>> server.predict({"records": [{"age": 41}]}, "predict", "r1").prediction  # doctest: +SKIP
        array([1])
    """

    def __init__(self, settings: Any, model_uri: str, shadow_uri: str | None = None, config: ServeConfig | None = None,
                 client: Any = None):
        from modelcycle.registry import Registry
        from modelcycle.serving.holder import ModelHolder
        from modelcycle.serving.metrics import ServerMetrics
        from modelcycle.serving.predlog import PredictionLog
        from modelcycle.store.predictions import settings_root
        from modelcycle.tracking.client import Client

        self.settings = settings
        self.config = cfg = config or ServeConfig()
        self.client = client or Client(settings)
        self.registry = Registry(self.client)
        self.holder = ModelHolder(self.registry, model_uri, trust=cfg.trust, poll=cfg.poll_seconds, trusted_types=cfg.trusted_types)
        self.shadow = (ModelHolder(self.registry, shadow_uri, trust=cfg.trust, poll=cfg.poll_seconds, trusted_types=cfg.trusted_types)
                       if shadow_uri else None)
        self.predlog = PredictionLog(settings_root(settings), spool=os.path.join(str(settings.home), "spool")) if cfg.log_predictions else None
        self.metrics = ServerMetrics()
        self.pool = cf.ThreadPoolExecutor(max_workers=cfg.threads, thread_name_prefix="modelcycle-predict")
        self._shadow_pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelcycle-shadow")
        self._lock = threading.Lock()
        self._inflight = 0
        self._shadow_pending = 0
        self._numeric: dict[str, Any] = {}  # per model hash: (columns, nullable) when every input is a double, else None
        self._profiles: dict[str, Any] = {}  # per model hash: the reference profile (to name unseen values), or None
        self.ready = False
        try:
            from sklearn import config_context as sklearn_config
        except ImportError:  # a server for non-scikit-learn models
            sklearn_config = None
        self._sklearn_config = sklearn_config

    @property
    def name(self) -> str:
        return self.holder.name

    # --- life ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.holder.start()
        if self.shadow is not None:
            self.shadow.start()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        self.holder.stop()
        if self.shadow is not None:
            self.shadow.stop()
        self.pool.shutdown(wait=True)
        self._shadow_pool.shutdown(wait=True)
        if self.predlog is not None:
            self.predlog.close()
        self.client.close()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """One of ``max_queue`` places for a request being predicted; 503 when none is free."""
        with self._lock:
            if self._inflight >= self.config.max_queue:
                self.metrics.rejected.inc()
                raise ClientError(503, f"the server is busy ({self.config.max_queue} requests queued); retry shortly", "overloaded",
                                  headers={"Retry-After": "1"})
            self._inflight += 1
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1

    # --- prediction ---------------------------------------------------------------------------------------
    def _numeric_columns(self, model: Any) -> Any:
        found = self._numeric.get(model.hash, False)
        if found is False:
            import pandas as pd

            signature = model.signature
            found = None
            if signature is not None and all(c.type == "double" for c in signature.inputs):
                # an object-dtype index made once: scikit-learn reads the names on every call, and string-array indexes convert slowly
                found = (pd.Index(signature.input_names, dtype=object), [c.nullable for c in signature.inputs])
            self._numeric[model.hash] = found
        return found

    def _checked(self, model: Any, parsed: Parsed) -> Any:
        import numpy as np

        if parsed.checked:
            return parsed.frame
        checked = model.signature.check(parsed.frame) if model.signature is not None else parsed.frame
        floats = [c for c, dtype in checked.dtypes.items() if dtype.kind == "f"]
        if floats:
            infinite = np.isinf(checked[floats].to_numpy()).any(axis=0)
            bad = [c for c, hit in zip(floats, infinite, strict=True) if hit]
            if bad:
                raise ClientError(400, f"infinite values in {', '.join(bad)}; send finite numbers (or null where the column allows it)",
                                  "invalid_value", {"columns": bad})
        return checked

    def run_model(self, model: Any, prepared: Any, want_proba: bool) -> tuple[Any, Any]:
        """The model's ``predict`` (and ``predict_proba`` when wanted): always what ``predict`` itself answers."""
        import numpy as np

        raw = model.raw
        if not (want_proba and model.manifest.has_predict_proba):
            return np.asarray(model.predict_prepared(prepared)), None
        if derives_predict(raw):  # exact by construction: the same computation predict does
            proba = np.asarray(raw.predict_proba(prepared), dtype=float)
            return np.asarray(raw.classes_).take(proba.argmax(axis=1), axis=0), proba
        return np.asarray(model.predict_prepared(prepared)), np.asarray(raw.predict_proba(prepared), dtype=float)

    def predict_raw(self, raw: bytes, protocol: str, request_id: str, want_proba: bool = True) -> Prediction:
        """Parse a request's body (in the calling thread: never the event loop), then :meth:`predict` it."""
        return self.predict(parse_json(raw), protocol, request_id, want_proba)

    def predict(self, body: dict[str, Any], protocol: str, request_id: str, want_proba: bool = True) -> Prediction:
        """Predict the rows of a parsed request body (``protocol``: ``predict``, ``mlflow`` or ``oip``).

        Raises:
            ClientError: the body's rows do not fit the model (naming the columns), or the model refused them.
        """
        model = self.holder.current  # one read: this request stays on this version even if a swap happens now
        parsed = frame_from_body(body, protocol, model.signature, self._numeric_columns(model))
        try:
            checked = self._checked(model, parsed)
        except SignatureError as e:
            raise ClientError(400, str(e), "signature_mismatch", {"columns": e.problems}) from None
        array = parsed.frame.to_numpy() if parsed.checked else None  # the block the frame was made from, not a copy
        start = time.perf_counter()
        try:
            prepared = model.prepare(checked, checked=True)
            if self._sklearn_config is not None and model.flavour == "sklearn":
                with self._sklearn_config(assume_finite=True):  # checked above
                    prediction, proba = self.run_model(model, prepared, want_proba)
            else:
                prediction, proba = self.run_model(model, prepared, want_proba)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise self._refused(model, checked, e, request_id) from None
        latency = (time.perf_counter() - start) * 1000.0
        version = model.version.version if model.version is not None else None
        classes = [str(c) for c in getattr(model.raw, "classes_", [])] if proba is not None else []
        self.metrics.rows.labels("champion").inc(len(checked))
        sample = proba[:20, 1] if proba is not None and proba.ndim == 2 and proba.shape[1] == 2 else \
            prediction[:20] if prediction.dtype.kind in "fiu" else ()
        for v in sample:
            if math.isfinite(float(v)):
                self.metrics.prediction.observe(float(v))
        if self.predlog is not None:
            self._log(checked, request_id, version, "champion", latency, prediction, proba, classes, array)
        if self.shadow is not None:
            self._submit_shadow(checked, request_id)
        return Prediction(prediction, proba if want_proba else None, classes, version, parsed.extra, parsed.extra_count, latency)

    def _refused(self, model: Any, checked: Any, error: Exception, request_id: str) -> ClientError:
        """The model refused rows that fit its signature (an unseen category, say): a 400 naming the columns whose values
        training never saw, when the package's profile can tell."""
        from modelcycle.serving.bodies import _shown

        log.info("request %s: the model refused its input: %s: %s", request_id, type(error).__name__, str(error)[:300])
        unseen = self._unseen(model, checked)
        where = ("; values never seen in training: " + "; ".join(f"{_shown(c)} ({', '.join(_shown(str(v), 30) for v in vs)})"
                                                                   for c, vs in unseen.items())) if unseen else ""
        first = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        return ClientError(400, f"the model could not predict on these rows ({type(error).__name__}: {_shown(first, 300)}){where}",
                           "model_rejected_input", {"columns": sorted(unseen)})

    def _unseen(self, model: Any, checked: Any) -> dict[str, list[Any]]:
        if model.hash not in self._profiles:
            try:
                self._profiles[model.hash] = model.profile
            except Exception:  # a package without a usable profile: the message names no column
                self._profiles[model.hash] = None
        reference = self._profiles[model.hash]
        if reference is None:
            return {}
        out: dict[str, list[Any]] = {}
        for name in checked.columns:
            col = reference.columns.get(str(name))
            if col is None or col.exact is None or col.base not in ("categorical", "string", "boolean"):
                continue
            known = {str(k) for k in col.exact}
            values = checked[name].dropna().astype(str).unique()
            new = [v for v in values[:1000] if v not in known]
            if new:
                out[str(name)] = new[:5]
        return out

    def _log(self, checked: Any, rid: str, version: int | None, role: str, latency: float, prediction: Any,
             proba: Any, classes: list[str], array: Any = None) -> None:
        record = {"request_id": rid, "time": time.time(), "model": self.holder.name, "version": version if version is not None else -1,
                  "role": role, "latency_ms": latency, "inputs": checked, "prediction": prediction, "proba": proba, "classes": classes,
                  "array": array}
        if not self.predlog.add(record):  # type: ignore[union-attr]  (built into rows by the writer thread, off the request path)
            self.metrics.dropped.set(self.predlog.dropped)  # type: ignore[union-attr]

    def _submit_shadow(self, checked: Any, rid: str) -> None:
        with self._lock:
            if self._shadow_pending >= 100:
                return  # the challenger cannot keep up: skip rather than slow the champion down
            self._shadow_pending += 1

        def run() -> None:
            try:
                model = self.shadow.current  # type: ignore[union-attr]
                start = time.perf_counter()
                prediction, proba = self.run_model(model, model.prepare(checked), want_proba=True)
                classes = [str(c) for c in getattr(model.raw, "classes_", [])] if proba is not None else []
                version = model.version.version if model.version is not None else None
                self.metrics.rows.labels("shadow").inc(len(checked))
                if self.predlog is not None:
                    self._log(checked, rid, version, "shadow", (time.perf_counter() - start) * 1000, prediction, proba, classes)
            except Exception as e:  # the shadow never affects answers
                self.metrics.errors.labels("shadow", type(e).__name__).inc()
            finally:
                with self._lock:
                    self._shadow_pending -= 1

        self._shadow_pool.submit(run)

    # --- labels -------------------------------------------------------------------------------------------
    def labels(self, body: dict[str, Any]) -> int:
        """Store ground truth for earlier predictions: ``{"request_ids": [...], "labels": [...], "rows": [...]?}``.

        Raises:
            ClientError: the body's shape, or request ids the log does not have.
        """
        from modelcycle.store.predictions import append_labels, settings_root

        ids, values = body.get("request_ids"), body.get("labels")
        if not isinstance(ids, list) or not isinstance(values, list) or len(ids) != len(values) or not ids:
            raise ClientError(400, "send {\"request_ids\": [...], \"labels\": [...]} with one label per request id; for a request of several "
                                   "rows, repeat its id once per row and add \"rows\": [0, 1, ...], the position of each label's row in its request",
                              "bad_shape")
        if not all(isinstance(i, str) for i in ids):
            raise ClientError(400, "request_ids must be strings (the X-Request-ID of each prediction)", "bad_shape")
        rows = body.get("rows")
        if rows is not None and (not isinstance(rows, list) or len(rows) != len(ids)
                                 or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rows)):
            raise ClientError(400, "rows, when given, must be a list of whole numbers ≥ 0 (the row of each label in its request)", "bad_shape")
        if self.predlog is not None:  # the predictions being labelled may still be queued
            self.predlog.flush(ship=False)
        try:
            return append_labels(settings_root(self.settings), self.holder.name, ids, values, rows, wait=LABEL_WAIT)
        except InvalidInputError as e:
            raise ClientError(400, str(e), "bad_labels") from None
        except ArtifactError as e:
            raise ClientError(503, f"{e}; no label was stored: send them again later", "store_unreachable") from None
        except PermissionDeniedError as e:  # the replica's own token may not write labels of its model
            raise ClientError(403, f"this server may not store labels: {e}; no label was stored", "labels_refused") from None

    # --- descriptions -------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        data = {"model": self.holder.describe()}
        if self.shadow is not None:
            data["shadow"] = self.shadow.describe()
        return data

    def refresh_metrics(self) -> None:
        self.metrics.version.labels(self.holder.name).set(self.holder.version or 0)
        self.metrics.swap_failures.set(self.holder.failures + (self.shadow.failures if self.shadow else 0))
        if self.predlog is not None:
            self.metrics.dropped.set(self.predlog.dropped)
            self.metrics.spool_bytes.set(self.predlog.spool_bytes)
            self.metrics.shipped.set(self.predlog.shipped)
            self.metrics.ship_failures.set(self.predlog.ship_failures)

    def metadata(self) -> dict[str, Any]:
        """The Open Inference Protocol's model metadata."""
        model = self.holder.current
        inputs = [{"name": c.name, "datatype": _oip_datatype(c.type), "shape": [-1]} for c in (model.signature.inputs if model.signature else ())]
        outputs = [{"name": "predict", "datatype": "BYTES" if not model.signature or not model.signature.outputs
                    else _oip_datatype(model.signature.outputs[0].type), "shape": [-1]}]
        if model.manifest.has_predict_proba:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return {"name": self.holder.name, "versions": [str(self.holder.version)] if self.holder.version else [], "platform": model.flavour,
                "inputs": inputs, "outputs": outputs}


LABEL_WAIT = 5.0  # seconds a label waits for its prediction to reach the shared log (other replicas publish every second)


def _oip_datatype(kind: str) -> str:
    return {"double": "FP64", "long": "INT64", "boolean": "BOOL"}.get(kind, "BYTES")
