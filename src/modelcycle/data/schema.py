"""Schemas: what data is expected to look like, inferred from a profile and kept as editable YAML."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.data.profile import NUMERIC_BASES, Profile, profile
from modelcycle.errors import InvalidInputError

__all__ = ["TYPES", "ColumnSchema", "Schema", "infer_schema"]

TYPES = ("numeric", "integer", "boolean", "categorical", "text", "datetime")


@dataclass
class ColumnSchema:
    """The expectations for one column.

    Example:
        >>> ColumnSchema("age", "integer", min=0, max=120).required
        True
    """

    name: str
    type: str
    required: bool = True
    max_missing: float = 0.0  # largest tolerated share of missing values (0: not nullable)
    min: float | None = None
    max: float | None = None
    categories: list[Any] | None = None
    max_unseen: float = 0.0  # largest tolerated share of values outside ``categories``
    observed: str = ""  # what inference saw; written as a comment in the YAML

    @property
    def nullable(self) -> bool:
        return self.max_missing > 0


@dataclass
class Schema:
    """Expectations for every column of a dataset; ``save``/``load`` as YAML people can edit.

    Example:
        >>> import pandas as pd, tempfile, os
        >>> s = infer_schema(pd.DataFrame({"age": [30, 41, 25]}))
        >>> path = os.path.join(tempfile.mkdtemp(), "schema.yaml")
        >>> s.save(path)
        >>> Schema.load(path).columns["age"].min   # never negative, so it must stay so
        0
    """

    columns: dict[str, ColumnSchema] = field(default_factory=dict)

    def to_yaml(self) -> str:
        import yaml

        lines = ["# modelcycle schema: edit the expectations; the comments say what was observed.", "columns:"]
        for col in self.columns.values():
            body: dict[str, Any] = {"type": col.type, "required": col.required, "max_missing": col.max_missing}
            if col.min is not None:
                body["min"] = col.min
            if col.max is not None:
                body["max"] = col.max
            if col.categories is not None:
                body["categories"] = col.categories
                body["max_unseen"] = col.max_unseen
            if col.observed:
                lines.append(f"  # {col.name}: {col.observed}")
            text = yaml.safe_dump({col.name: body}, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
            lines.extend("  " + line for line in text.rstrip().splitlines())
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_yaml())

    @classmethod
    def from_yaml(cls, text: str, source: str = "schema") -> Schema:
        from modelcycle import _yaml

        try:
            doc = _yaml.load(text, source=source)
        except _yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise InvalidInputError(f"{source}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("columns"), dict):
            raise InvalidInputError(f"{source}: expected a mapping with a 'columns:' section")
        known = {"type", "required", "max_missing", "min", "max", "categories", "max_unseen"}
        columns = {}
        for name, body in doc["columns"].items():
            if not isinstance(body, dict):
                raise InvalidInputError(f"{source}: column {name!r} must be a mapping such as {{type: numeric}}")
            unknown = set(body) - known
            if unknown:
                raise InvalidInputError(
                    f"{source}: column {name!r} has unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
                )
            kind = body.get("type")
            if kind not in TYPES:
                raise InvalidInputError(f"{source}: column {name!r} has type {kind!r}; use one of {', '.join(TYPES)}")
            for key in ("max_missing", "max_unseen"):
                value = body.get(key, 0.0)
                if not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise InvalidInputError(f"{source}: column {name!r}: {key} must be a share between 0 and 1, not {value!r}")
            columns[str(name)] = ColumnSchema(
                name=str(name), type=kind, required=bool(body.get("required", True)),
                max_missing=float(body.get("max_missing", 0.0)), min=body.get("min"), max=body.get("max"),
                categories=body.get("categories"), max_unseen=float(body.get("max_unseen", 0.0)),
            )
        return cls(columns)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"schema file {str(p)!r} does not exist; create one with `modelcycle data infer-schema`")
        return cls.from_yaml(p.read_text(), source=p.name)


def _observed(col: Any) -> str:
    parts = [f"{col.count:,} values", f"{col.missing / max(col.count + col.missing, 1):.1%} missing"]
    if col.base in NUMERIC_BASES and col.min is not None:
        parts.append(f"range [{col.min:.6g}, {col.max:.6g}]")
        if not math.isnan(col.mean):
            parts.append(f"mean {col.mean:.4g}")
    parts.append(f"{col.distinct:,} distinct")
    return ", ".join(parts)


def infer_schema(data_or_profile: Any, max_categories: int = 50) -> Schema:
    """Infer expectations from data (or its profile): types, missing shares, ranges and categories.

    Missing shares get headroom (twice what was seen, plus 1%); numbers never seen negative get
    ``min: 0``; categoricals with at most ``max_categories`` values list them and tolerate 1%
    unseen values.
    """
    p = data_or_profile if isinstance(data_or_profile, Profile) else profile(data_or_profile)
    schema = Schema()
    for name, col in p.columns.items():
        total = col.count + col.missing
        seen = col.missing / total if total else 0.0
        cs = ColumnSchema(name=name, type=col.kind, max_missing=min(1.0, round(2 * seen + 0.01, 4)) if seen else 0.0,
                          observed=_observed(col))
        if col.kind in ("numeric", "integer") and col.min is not None and col.min >= 0:
            # Data never seen negative stays non-negative: sign and sentinel errors (-1, -999) are
            # caught, while heavy tails of new samples are not mistaken for errors. Upper bounds,
            # which samples cannot tell, are the user's to set.
            cs.min = 0
        if col.kind in ("categorical", "boolean") and col.exact is not None and len(col.exact) <= max_categories:
            cs.categories = sorted(col.exact, key=str)
            cs.max_unseen = 0.01 if col.kind == "categorical" else 0.0
        schema.columns[name] = cs
    return schema
