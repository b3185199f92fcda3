"""Request bodies of each protocol turned into a DataFrame of the model's columns, and predictions back into each protocol's answer.

A body is parsed once (bounded nesting, valid text only) and only the columns the model's
signature names are built into the frame: other keys are counted and named, never materialised.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["ClientError", "Parsed", "frame_from_body", "parse_json", "to_oip"]

MAX_DEPTH = 32
_EXTRA_NAMES = 10  # extra columns named in a warning; the rest are counted
_FAST_TYPES = frozenset({int, float, type(None)})


class ClientError(Exception):
    """A client's mistake: answered with ``status`` in the shape of the route's protocol."""

    def __init__(self, status: int, message: str, code: str = "bad_request", details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = details
        self.headers = headers or {}


def _orjson_loads(raw: bytes) -> Any:
    try:
        import orjson
    except ImportError:  # orjson is optional: 3x faster on large bodies
        raise ValueError("orjson is not installed") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(str(e)) from None


def _shown(text: str, limit: int = 60) -> str:
    """A name or value as text that is safe to print anywhere (escapes for control, non-ASCII and surrogate characters)."""
    escaped = text.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "…"


def _walk(value: Any, limit: int, strings: bool) -> None:
    """Refuse nesting deeper than ``limit``; with ``strings``, refuse text that is not valid Unicode (a lone surrogate)."""
    stack: list[tuple[Any, int, str | None]] = [(value, 1, None)]
    while stack:
        item, depth, key = stack.pop()
        if depth > limit:
            raise ClientError(400, f"the JSON body is nested more than {limit} levels deep", "too_deep")
        if isinstance(item, dict):
            named = item.get("name") if isinstance(item.get("name"), str) and "data" in item else None  # an Open Inference Protocol input
            for k, v in item.items():
                if strings and not _valid_text(k):
                    raise ClientError(400, f"a key of the body is not valid Unicode text ({_shown(k)}): it holds a lone surrogate", "bad_text")
                if isinstance(v, (dict, list)) or (strings and isinstance(v, str)):
                    stack.append((v, depth + 1, named if named is not None and k == "data" else k))
        elif isinstance(item, list):
            stack.extend((v, depth + 1, key) for v in item if isinstance(v, (dict, list)) or (strings and isinstance(v, str)))
        elif isinstance(item, str) and not _valid_text(item):
            where = f" in column {_shown(key)!r}" if key is not None else ""
            raise ClientError(400, f"a value{where} is not valid Unicode text ({_shown(item)}): it holds a lone surrogate; "
                                   "send UTF-8 text", "bad_text", {"columns": [key] if key is not None else []})


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _big_int(text: str) -> Any:
    """JSON integers beyond 64 bits become floats (infinite when beyond any double): refused by the number checks, naming the column."""
    value = int(text) if len(text) <= 19 else float(text)
    return value if isinstance(value, float) or -(2**63) <= value < 2**64 else float(value)


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; NaN and Infinity are read (some clients send them), nesting and text are checked.

    Raises:
        ClientError: empty, not JSON, nested too deeply, invalid text, or not an object.
    """
    if not raw:
        raise ClientError(400, "the request has no body; send a JSON object", "empty_body")
    try:
        value = _orjson_loads(raw)
        strict = True
    except ValueError:  # orjson refuses NaN and Infinity, lone surrogates and huge integers: the standard parser reads them, then checks
        try:
            value = json.loads(raw, parse_constant=lambda c: {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[c],
                               parse_int=_big_int)
        except (ValueError, RecursionError) as e:
            raise ClientError(400, f"the body is not valid JSON: {str(e)[:200]}", "malformed_json") from None
        strict = False
    _walk(value, MAX_DEPTH, strings=not strict)
    if not isinstance(value, dict):
        raise ClientError(400, f"the body must be a JSON object, not a {type(value).__name__}", "bad_shape")
    return value


class Parsed:
    """A request's rows: the frame of the model's columns, which other columns were sent, and whether numbers were checked already."""

    __slots__ = ("checked", "extra", "extra_count", "frame")

    def __init__(self, frame: Any, extra: Sequence[str] = (), extra_count: int = 0, checked: bool = False):
        self.frame = frame
        self.extra = list(extra)
        self.extra_count = extra_count
        self.checked = checked


def _extras(names: Any, known: set[str] | None) -> tuple[list[str], int]:
    if known is None:
        return [], 0
    extra = {str(n) for n in names} - known
    return sorted(extra)[:_EXTRA_NAMES], len(extra)


def _empty() -> ClientError:
    return ClientError(400, "the batch is empty: send at least one row", "empty_batch")


def _records(records: Any, where: str, columns: list[str] | None) -> Parsed:
    import pandas as pd

    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ClientError(400, f"{where} must be a list of objects, one per row", "bad_shape")
    if not records:
        raise _empty()
    if columns is None:
        return Parsed(pd.DataFrame.from_records(records))
    seen = set(itertools.chain.from_iterable(records))  # distinct keys: bounded by the body, never rows × keys
    extra, count = _extras(seen, set(columns))
    present = [c for c in columns if c in seen]
    data = {c: [r.get(c) for r in records] for c in present}
    return Parsed(pd.DataFrame(data, columns=present, index=pd.RangeIndex(len(records))), extra, count)


def _columns(columns: Any, where: str, known: list[str] | None) -> Parsed:
    import pandas as pd

    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
        raise ClientError(400, f"{where} must map each column name to a list of values", "bad_shape")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ClientError(400, f"{where}: columns have different lengths ({', '.join(map(str, sorted(lengths)))})", "bad_shape")
    if not columns or lengths == {0}:
        raise _empty()
    if known is None:
        return Parsed(pd.DataFrame(columns))
    extra, count = _extras(columns, set(known))
    present = [c for c in known if c in columns]
    rows = pd.RangeIndex(lengths.pop())
    return Parsed(pd.DataFrame({c: columns[c] for c in present}, columns=present, index=rows), extra, count)


def _split(split: Any, known: list[str] | None) -> Parsed:
    import pandas as pd

    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
        raise ClientError(400, "dataframe_split needs {\"columns\": [...], \"data\": [[...], ...]}", "bad_shape")
    names = [str(c) for c in split["columns"]]
    rows = split["data"]
    if not rows:
        raise _empty()
    width = len(names)
    if any(not isinstance(row, list) or len(row) != width for row in rows):
        raise ClientError(400, f"every row of dataframe_split.data must be a list of {width} values", "bad_shape")
    if known is None:
        return Parsed(pd.DataFrame(rows, columns=names))
    extra, count = _extras(names, set(known))
    position = {n: i for i, n in enumerate(names)}
    present = [c for c in known if c in position]
    return Parsed(pd.DataFrame({c: [row[position[c]] for row in rows] for c in present}, columns=present, index=pd.RangeIndex(len(rows))),
                  extra, count)


_OIP_TYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}


def _oip(body: dict[str, Any], known: list[str] | None) -> Parsed:
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
            raise ClientError(400, f"input {_shown(name)!r}: unknown datatype {_shown(str(item['datatype']))!r}", "bad_shape")
        if not isinstance(data, list):
            data = [data]
        flat = data
        while flat and isinstance(flat[0], list):
            if not all(isinstance(row, list) for row in flat):
                raise ClientError(400, f"input {_shown(name)!r}: data mixes lists and single values; send a flat list or equal rows", "bad_shape")
            flat = [x for row in flat for x in row]
        shape = item.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**63
                                                                    for d in shape):
                raise ClientError(400, f"input {_shown(name)!r}: shape must be a list of whole numbers, e.g. [3] or [3, 4]", "bad_shape")
            size = math.prod(shape)
            if size != len(flat):
                raise ClientError(400, f"input {_shown(name)!r}: shape {shape} holds {size:,} values but data has {len(flat):,}", "bad_shape")
            if known is not None and len(inputs) == 1 and name not in known and len(shape) == 2 and shape[1] == len(known) > 1:
                # one 2-D tensor, a row per prediction: its columns are the model's inputs, in order
                return _columns({c: flat[j::shape[1]] for j, c in enumerate(known)}, "inputs", known)
        columns[name] = flat
    return _columns(columns, "inputs", known)


def _fast_numeric(body: dict[str, Any], columns: Any, nullable: list[bool]) -> Parsed | None:
    """For a model whose inputs are all numbers: the checked float64 frame straight from the body, or None when anything
    is unusual (the general path then parses it and names every problem: booleans, text, missing or extra keys, huge numbers)."""
    import numpy as np
    import pandas as pd

    names = list(columns)
    try:
        if "records" in body or "dataframe_records" in body:
            records = body.get("records", body.get("dataframe_records"))
            if not isinstance(records, list) or not records or not all(isinstance(r, dict) and len(r) == len(names) for r in records):
                return None
            rows = [[r[n] for n in names] for r in records]
        elif "dataframe_split" in body:
            split = body["dataframe_split"]
            if not isinstance(split, dict) or split.get("columns") != names or not split.get("data") or not isinstance(split["data"], list):
                return None
            rows = split["data"]
            if not all(isinstance(row, list) for row in rows):
                return None
        else:
            return None
        if not _FAST_TYPES.issuperset(map(type, itertools.chain.from_iterable(rows))):  # true is not 1.0: booleans take the general path
            return None
        array = np.array(rows, dtype=np.float64)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if array.ndim != 2 or array.shape[1] != len(names) or not np.isfinite(array[:, [not n for n in nullable]]).all() \
            or np.isinf(array).any():
        return None
    return Parsed(pd.DataFrame(array, columns=columns, copy=False), checked=True)


def frame_from_body(body: dict[str, Any], protocol: str, signature: Any = None, numeric: Any = None) -> Parsed:
    """The rows of a request body, in ``protocol`` (``predict``, ``mlflow`` or ``oip``), limited to the signature's columns.

    Args:
        numeric: ``(columns, nullable)`` when every input is a double: the fast path builds the checked frame directly.

    Raises:
        ClientError: naming what is wrong with the body.

    Example:
        >>> parsed = frame_from_body({"records": [{"x": 1.0, "junk": 2}]}, "predict")
        >>> list(parsed.frame.columns)
        ['x', 'junk']
    """
    known = signature.input_names if signature is not None else None
    if numeric is not None and protocol != "oip" and not (protocol == "mlflow" and "records" in body):
        fast = _fast_numeric(body, *numeric)
        if fast is not None:
            return fast
    if protocol == "oip":
        return _oip(body, known)
    given = [k for k in ("records", "columns", "dataframe_split", "dataframe_records") if k in body]
    if protocol != "oip" and len(given) > 1:
        raise ClientError(400, f"the body holds rows in {len(given)} ways ({', '.join(given)}); send them one way", "bad_shape")
    if protocol == "predict":
        if "records" in body:
            return _records(body["records"], "records", known)
        if "columns" in body:
            return _columns(body["columns"], "columns", known)
    if "dataframe_records" in body:
        return _records(body["dataframe_records"], "dataframe_records", known)
    if "dataframe_split" in body:
        return _split(body["dataframe_split"], known)
    keys = ", ".join(sorted(_shown(str(k), 30) for k in itertools.islice(body, 20))) or "none"
    accepted = ("{\"records\": [...]}, {\"columns\": {...}}, {\"dataframe_split\": ...} or {\"dataframe_records\": [...]}" if protocol == "predict"
                else "{\"dataframe_split\": ...} or {\"dataframe_records\": [...]}")
    raise ClientError(400, f"send rows as {accepted}; the body had keys: {keys}", "bad_shape")


def _oip_type(values: Any) -> str:
    kind = getattr(values, "dtype", None)
    if kind is None:
        return "BYTES"
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind.kind, "BYTES")


def to_oip(model: str, version: int | None, request_id: str, prediction: Any, proba: Any) -> dict[str, Any]:
    import numpy as np

    pred = np.asarray(prediction)
    outputs = [{"name": "predict", "shape": list(pred.shape), "datatype": _oip_type(pred), "data": plain(pred.ravel())}]
    if proba is not None:
        p = np.asarray(proba, dtype=float)
        outputs.append({"name": "predict_proba", "shape": list(p.shape), "datatype": "FP64", "data": plain(p.ravel())})
    return {"model_name": model, "model_version": str(version) if version is not None else None, "id": request_id, "outputs": outputs}


def plain(values: Any) -> list[Any]:
    """Values as JSON-able Python values; NaN and infinities become null."""
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in out]
