"""What a model takes and returns: columns with types and nullability, checked before every prediction."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelcycle.errors import InvalidInputError, ModelcycleWarning, SignatureError

__all__ = ["TYPES", "ColumnSpec", "Signature", "infer_signature"]

TYPES = ("double", "long", "boolean", "string", "datetime")
_MAX_EXAMPLES = 3


@dataclass(frozen=True)
class ColumnSpec:
    """One input or output column.

    Example:
        >>> ColumnSpec("age", "long").to_dict()
        {'name': 'age', 'type': 'long', 'nullable': False}
    """

    name: str
    type: str
    nullable: bool = False
    categories: tuple[Any, ...] | None = None  # the training column was categorical: inputs become that categorical again

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise InvalidInputError(f"column {self.name!r}: type {self.type!r} is not one of {', '.join(TYPES)}")

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnSpec:
        categories = d.get("categories")
        return cls(str(d["name"]), str(d["type"]), bool(d.get("nullable", False)),
                   tuple(categories) if isinstance(categories, list) else None)


@dataclass(frozen=True)
class Signature:
    """The columns a model needs, in order, and what it predicts.

    ``check(frame)`` returns the frame with the signature's columns in the signature's order,
    extra columns dropped (with a warning), or raises one :class:`SignatureError` naming every
    missing, mistyped or unexpectedly null column.

    Example:
        >>> import pandas as pd
        >>> sig = infer_signature(pd.DataFrame({"x": [1.5, 2.0], "city": ["a", "b"]}))
        >>> [c.type for c in sig.inputs]
        ['double', 'string']
        >>> sig.check(pd.DataFrame({"city": ["c"], "x": [3]})).columns.tolist()
        ['x', 'city']
    """

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs], "outputs": [c.to_dict() for c in self.outputs]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        try:
            return cls(tuple(ColumnSpec.from_dict(c) for c in d["inputs"]),
                       tuple(ColumnSpec.from_dict(c) for c in d.get("outputs", [])))
        except (KeyError, TypeError) as e:
            raise InvalidInputError(f"not a model signature: missing {e}") from None

    def check(self, frame: Any) -> Any:
        """The input frame with the signature's columns in order, or a SignatureError naming every problem."""
        import pandas as pd

        if isinstance(frame, Mapping):
            frame = pd.DataFrame(frame)
        if not isinstance(frame, pd.DataFrame):
            raise SignatureError(f"model input must be a pandas DataFrame (or a dict of columns), not {type(frame).__name__}")
        if len(frame) == 0:
            raise SignatureError("model input is empty: give at least one row")
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SignatureError(f"model input has duplicate columns: {', '.join(dupes)}",
                                 [{"column": n, "problem": "duplicate"} for n in dupes])
        if names != list(frame.columns):
            frame = frame.set_axis(names, axis=1)
        problems: list[dict[str, Any]] = []
        present = set(frame.columns)
        missing = [c for c in self.inputs if c.name not in present]
        problems += [{"column": c.name, "problem": "missing", "expected": c.type, "observed": None} for c in missing]
        dtypes = frame.dtypes
        # Columns already of their type need no per-column work: numbers are checked for missing
        # values in one vectorised pass; only the others go through _conform.
        fast = [c for c in self.inputs if c.name in present and _already(dtypes[c.name], c.type)]
        fast_names = [c.name for c in fast]
        if fast_names:
            import numpy as np

            strict = [c.name for c in fast if not c.nullable]
            if strict:
                nulls = frame[strict].isna().to_numpy().sum(axis=0) if len(strict) else np.array([])
                for name, n in zip(strict, nulls, strict=True):
                    if n:
                        spec = next(c for c in fast if c.name == name)
                        problems.append({"column": name, "problem": "null", "expected": spec.type, "observed": "null", "rows": int(n)})
            doubles = [c.name for c in fast if c.type == "double"]
            if doubles:
                infinite = np.isinf(frame[doubles].to_numpy(dtype=np.float64)).sum(axis=0)
                problems += [{"column": name, "problem": "infinite", "expected": "double", "observed": "infinity", "rows": int(n)}
                             for name, n in zip(doubles, infinite, strict=True) if n]
        converted: dict[str, Any] = {}
        fast_set = set(fast_names)
        for spec in self.inputs:
            if spec.name not in present or spec.name in fast_set:
                continue
            col, problem = _conform(frame[spec.name], spec)
            if problem is not None:
                problems.append(problem)
            else:
                converted[spec.name] = _categorical(col, spec.categories) if spec.categories is not None else col
        if problems:
            raise SignatureError(_message(sorted(problems, key=lambda p: self.input_names.index(p["column"]))), problems)
        extra = [n for n in frame.columns if n not in converted and n not in fast_set]
        if extra:
            warnings.warn(f"model input has columns the model does not use, dropped: {', '.join(map(str, extra))}",
                          ModelcycleWarning, stacklevel=3)
        if not converted:
            out = frame[self.input_names] if list(frame.columns) != self.input_names else frame
            return out
        out = frame[fast_names].copy() if fast_names else pd.DataFrame(index=frame.index)
        for name, col in converted.items():
            out[name] = col
        return out[self.input_names]

    def extra_columns(self, frame: Any) -> list[str]:
        """Columns of ``frame`` the signature does not name (they are dropped by ``check``)."""
        known = set(self.input_names)
        return [str(c) for c in frame.columns if str(c) not in known]


_MAX_CATEGORIES = 10_000


def _categorical(series: Any, categories: tuple[Any, ...]) -> Any:
    """The column as the categorical it was in training (a value training never saw becomes missing, as in pandas)."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) and tuple(dtype.categories) == categories:
        return series
    return pd.Series(pd.Categorical(series, categories=list(categories)), index=series.index, name=series.name)


def _categories(series: Any) -> tuple[Any, ...] | None:
    import pandas as pd

    if not isinstance(series.dtype, pd.CategoricalDtype) or len(series.dtype.categories) > _MAX_CATEGORIES:
        return None
    return tuple(c.item() if hasattr(c, "item") else c for c in series.dtype.categories)


def _already(dtype: Any, kind: str) -> bool:
    """Whether a column of ``dtype`` is already what a ``kind`` input takes, as it is."""
    code = getattr(dtype, "kind", "")
    if kind == "double":
        return code == "f"
    if kind == "long":
        return code in "iu" and getattr(dtype, "itemsize", 0) == 8 and code == "i"
    if kind == "boolean":
        return code == "b"
    if kind == "datetime":
        return code == "M"
    return False


def _message(problems: list[dict[str, Any]]) -> str:
    parts = []
    missing = [p["column"] for p in problems if p["problem"] == "missing"]
    if missing:
        parts.append("missing columns: " + ", ".join(missing))
    wrong = [p for p in problems if p["problem"] == "type"]
    if wrong:
        parts.append("wrong types: " + "; ".join(f"{p['column']} (expected {p['expected']}, got {p['observed']})" for p in wrong))
    nulls = [p for p in problems if p["problem"] == "null"]
    if nulls:
        parts.append("missing values in non-nullable columns: " + ", ".join(f"{p['column']} ({p['rows']} rows)" for p in nulls))
    infinite = [p for p in problems if p["problem"] == "infinite"]
    if infinite:
        parts.append("infinite values in " + ", ".join(f"{p['column']} ({p['rows']} rows)" for p in infinite)
                     + " (send finite numbers, or null where the column allows it)")
    return "model input does not match the model's signature: " + "; ".join(parts)


def _examples(series: Any, mask: Any) -> list[Any]:
    return [v if isinstance(v, (int, float, str, bool)) else str(v) for v in series[mask].head(_MAX_EXAMPLES).tolist()]


def _conform(series: Any, spec: ColumnSpec) -> tuple[Any, dict[str, Any] | None]:
    """The column converted to the spec's type, or the problem with it."""
    import numpy as np
    import pandas as pd
    from pandas.api import types as t

    def wrong(observed: str, bad: Any = None) -> tuple[Any, dict[str, Any]]:
        problem = {"column": spec.name, "problem": "type", "expected": spec.type, "observed": observed}
        if bad is not None:
            problem["examples"] = _examples(series, bad)
        return None, problem

    isna = series.isna()
    if not spec.nullable and bool(isna.any()):
        n = int(isna.sum())
        return None, {"column": spec.name, "problem": "null", "expected": spec.type, "observed": "null", "rows": n}
    dtype = series.dtype
    if spec.type in ("double", "long"):
        if t.is_bool_dtype(dtype):
            return wrong("boolean")
        if t.is_numeric_dtype(dtype):
            values = series
        elif t.is_object_dtype(dtype) or t.is_string_dtype(dtype):
            values = pd.to_numeric(series, errors="coerce")
            bad = values.isna() & ~isna
            if bool(bad.any()) or series.map(lambda v: isinstance(v, bool)).any():
                return wrong("string" if bool(bad.any()) else "boolean", bad if bool(bad.any()) else None)
        else:
            return wrong(str(dtype))
        as_float = values.astype("float64")
        infinite = np.isinf(as_float)
        if bool(infinite.any()):
            return None, {"column": spec.name, "problem": "infinite", "expected": spec.type, "observed": "infinity",
                          "rows": int(infinite.sum())}
        if spec.type == "long":
            fractional = ~isna & (np.floor(as_float) != as_float)
            if bool(fractional.any()):
                return wrong("double", fractional)
            return (values.astype("Int64") if bool(isna.any()) else values.astype("int64")), None
        return as_float, None
    if spec.type == "boolean":
        if t.is_bool_dtype(dtype):
            return series, None
        if t.is_object_dtype(dtype):
            bad = ~isna & ~series.map(lambda v: isinstance(v, (bool, np.bool_)))
            if bool(bad.any()):
                return wrong("mixed", bad)
            return series, None
        return wrong("double" if t.is_float_dtype(dtype) else "long" if t.is_integer_dtype(dtype) else str(dtype))
    if spec.type == "string":
        if isinstance(dtype, pd.CategoricalDtype) or (t.is_string_dtype(dtype) and not t.is_object_dtype(dtype)):
            return series, None
        if t.is_object_dtype(dtype):
            bad = ~isna & ~series.map(lambda v: isinstance(v, str))
            if bool(bad.any()):
                return wrong("mixed", bad)
            return series, None
        return wrong("double" if t.is_float_dtype(dtype) else "long" if t.is_integer_dtype(dtype)
                     else "boolean" if t.is_bool_dtype(dtype) else str(dtype))
    # datetime
    if t.is_datetime64_any_dtype(dtype):
        return series, None
    if t.is_object_dtype(dtype) or t.is_string_dtype(dtype):
        parsed = pd.to_datetime(series, errors="coerce", utc=True)
        bad = parsed.isna() & ~isna
        if bool(bad.any()):
            return wrong("string", bad)
        return parsed, None
    return wrong(str(dtype))


def _type_of(series: Any) -> str:
    import pandas as pd
    from pandas.api import types as t

    dtype = series.dtype
    if t.is_bool_dtype(dtype):
        return "boolean"
    if t.is_integer_dtype(dtype):
        return "long"
    if t.is_float_dtype(dtype):
        return "double"
    if t.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "string"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "boolean":
        return "boolean"
    if inferred == "integer":
        return "long"
    if inferred in ("floating", "mixed-integer-float", "decimal"):
        return "double"
    if inferred in ("datetime", "datetime64", "date"):
        return "datetime"
    return "string"


def _outputs(prediction: Any) -> tuple[ColumnSpec, ...]:
    import numpy as np
    import pandas as pd

    if prediction is None:
        return ()
    if isinstance(prediction, pd.DataFrame):
        return tuple(ColumnSpec(str(n), _type_of(s), bool(s.isna().any())) for n, s in prediction.items())
    series = pd.Series(np.asarray(prediction).ravel()) if not isinstance(prediction, pd.Series) else prediction
    return (ColumnSpec("prediction", _type_of(series), bool(series.isna().any())),)


def infer_signature(inputs: Any, prediction: Any = None, columns: Iterable[str] | None = None) -> Signature:
    """A signature from example input (a DataFrame) and, optionally, the model's prediction on it.

    A column is nullable when the example has missing values in it: infer from the training
    data (``reference_data``) rather than from a handful of rows, or pass a Signature.
    """
    import pandas as pd

    if isinstance(inputs, Mapping):
        inputs = pd.DataFrame(inputs)
    if not isinstance(inputs, pd.DataFrame):
        try:
            import numpy as np

            array = np.asarray(inputs)
            if array.ndim == 2:
                inputs = pd.DataFrame(array, columns=list(columns) if columns else [f"x{i}" for i in range(array.shape[1])])
        except Exception:
            pass
    if not isinstance(inputs, pd.DataFrame):
        raise InvalidInputError(f"cannot infer a signature from a {type(inputs).__name__}; give a pandas DataFrame")
    specs = tuple(ColumnSpec(str(n), _type_of(s), bool(s.isna().any()), _categories(s)) for n, s in inputs.items())
    return Signature(specs, _outputs(prediction))
