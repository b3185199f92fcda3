"""Request bodies of each protocol turned into a DataFrame, and predictions back into each protocol's answer."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["ClientError", "from_mlflow", "from_oip", "from_predict", "parse_json", "to_oip"]

MAX_DEPTH = 32


def _orjson_loads(raw: bytes) -> Any:
    try:
        import orjson
    except ImportError:  # orjson is optional: 3x faster on large bodies
        raise ValueError("orjson is not installed") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(str(e)) from None


class ClientError(Exception):
    """A client's mistake: answered with ``status`` in the shape of the route's protocol."""

    def __init__(self, status: int, message: str, code: str = "bad_request", details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = details
        self.headers = headers or {}


def _depth(value: Any, limit: int) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise ClientError(400, f"the JSON body is nested more than {limit} levels deep", "too_deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))


def parse_json(raw: bytes, content_type: str | None) -> Any:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in ("application/json", "", "text/json"):
        raise ClientError(415, f"send the body as application/json, not {kind}", "unsupported_media_type")
    if not raw:
        raise ClientError(400, "the request has no body; send a JSON object", "empty_body")
    try:
        value = _orjson_loads(raw)
    except ValueError:  # orjson refuses NaN and Infinity, which some clients send: the standard parser takes them
        try:
            value = json.loads(raw, parse_constant=lambda c: {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[c])
        except (ValueError, RecursionError) as e:
            raise ClientError(400, f"the body is not valid JSON: {str(e)[:200]}", "malformed_json") from None
    _depth(value, MAX_DEPTH)
    if not isinstance(value, dict):
        raise ClientError(400, f"the body must be a JSON object, not a {type(value).__name__}", "bad_shape")
    return value


def _frame_from_records(records: Any, where: str) -> Any:
    import pandas as pd

    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ClientError(400, f"{where} must be a list of objects, one per row", "bad_shape")
    if not records:
        raise ClientError(400, "the batch is empty: send at least one row", "empty_batch")
    return pd.DataFrame.from_records(records)


def _frame_from_columns(columns: Any, where: str) -> Any:
    import pandas as pd

    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
        raise ClientError(400, f"{where} must map each column name to a list of values", "bad_shape")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ClientError(400, f"{where}: columns have different lengths ({', '.join(map(str, sorted(lengths)))})", "bad_shape")
    if not columns or lengths == {0}:
        raise ClientError(400, "the batch is empty: send at least one row", "empty_batch")
    return pd.DataFrame(columns)


def from_predict(body: dict[str, Any]) -> Any:
    """``{"records": [...]}``, ``{"columns": {...}}``, or MLflow's ``dataframe_split`` / ``dataframe_records``."""
    if "records" in body:
        return _frame_from_records(body["records"], "records")
    if "columns" in body:
        return _frame_from_columns(body["columns"], "columns")
    return from_mlflow(body)


def from_mlflow(body: dict[str, Any]) -> Any:
    import pandas as pd

    if "dataframe_records" in body:
        return _frame_from_records(body["dataframe_records"], "dataframe_records")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
            raise ClientError(400, "dataframe_split needs {\"columns\": [...], \"data\": [[...], ...]}", "bad_shape")
        if not split["data"]:
            raise ClientError(400, "the batch is empty: send at least one row", "empty_batch")
        width = len(split["columns"])
        if any(not isinstance(row, list) or len(row) != width for row in split["data"]):
            raise ClientError(400, f"every row of dataframe_split.data must be a list of {width} values", "bad_shape")
        return pd.DataFrame(split["data"], columns=[str(c) for c in split["columns"]])
    keys = ", ".join(sorted(map(str, body))) or "none"
    raise ClientError(400, "send rows as {\"records\": [...]}, {\"columns\": {...}}, {\"dataframe_split\": ...} or "
                           f"{{\"dataframe_records\": [...]}}; the body had keys: {keys}", "bad_shape")


_OIP_TYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}


def from_oip(body: dict[str, Any]) -> Any:
    """Open Inference Protocol: ``{"inputs": [{"name", "shape", "datatype", "data"}, ...]}``, one input per column."""

    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ClientError(400, "an inference request needs \"inputs\": a list of {name, shape, datatype, data}", "bad_shape")
    columns: dict[str, list[Any]] = {}
    for i, item in enumerate(inputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "data" not in item:
            raise ClientError(400, f"inputs[{i}] needs a name and data", "bad_shape")
        name, data = item["name"], item["data"]
        if item.get("datatype") is not None and item["datatype"] not in _OIP_TYPES:
            raise ClientError(400, f"input {name!r}: unknown datatype {item['datatype']!r}", "bad_shape")
        if not isinstance(data, list):
            data = [data]
        flat = data
        while flat and isinstance(flat[0], list):
            flat = [x for row in flat for x in row]
        shape = item.get("shape")
        if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape):
            size = math.prod(shape)
            if size != len(flat):
                raise ClientError(400, f"input {name!r}: shape {shape} holds {size} values but data has {len(flat)}", "bad_shape")
        columns[name] = flat
    return _frame_from_columns(columns, "inputs")


def _oip_type(values: Any) -> str:
    kind = getattr(values, "dtype", None)
    if kind is None:
        return "BYTES"
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind.kind, "BYTES")


def to_oip(model: str, version: int | None, request_id: str, prediction: Any, proba: Any) -> dict[str, Any]:
    import numpy as np

    pred = np.asarray(prediction)
    outputs = [{"name": "predict", "shape": list(pred.shape), "datatype": _oip_type(pred), "data": _plain(pred.ravel())}]
    if proba is not None:
        p = np.asarray(proba, dtype=float)
        outputs.append({"name": "predict_proba", "shape": list(p.shape), "datatype": "FP64", "data": _plain(p.ravel())})
    return {"model_name": model, "model_version": str(version) if version is not None else None, "id": request_id, "outputs": outputs}


def _plain(values: Any) -> list[Any]:
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in out]


def fast_numeric(body: dict[str, Any], columns: Any, nullable: list[bool]) -> Any:
    """For a model whose inputs are all numbers: the checked float64 frame straight from the body,
    or None when anything is unusual (the general path then parses it and names every problem)."""
    import numpy as np
    import pandas as pd

    names = list(columns)
    try:
        if "records" in body or "dataframe_records" in body:
            records = body.get("records", body.get("dataframe_records"))
            if not isinstance(records, list) or not records or not all(isinstance(r, dict) and len(r) == len(names) for r in records):
                return None
            array = np.array([[r[n] for n in names] for r in records], dtype=np.float64)
        elif "dataframe_split" in body:
            split = body["dataframe_split"]
            if not isinstance(split, dict) or split.get("columns") != names or not split.get("data"):
                return None
            array = np.array(split["data"], dtype=np.float64)
        else:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    if array.ndim != 2 or array.shape[1] != len(names) or not np.isfinite(array[:, [not n for n in nullable]]).all() \
            or np.isinf(array).any():
        return None
    return pd.DataFrame(array, columns=columns, copy=False)
