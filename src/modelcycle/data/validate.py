"""Validation of data against a schema: every anomaly with its evidence, in one pass over batches."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modelcycle.data.profile import iter_batches
from modelcycle.data.schema import ColumnSchema, Schema
from modelcycle.errors import DataValidationError, InvalidInputError

__all__ = ["Anomaly", "ValidationReport", "validate"]

EXAMPLES = 5


@dataclass(frozen=True)
class Anomaly:
    """One way the data breaks its schema.

    Example:
        >>> Anomaly("age", "range", "error", "<= 120", "max 430", rows=2, examples=(430, 200)).rows
        2
    """

    column: str
    check: str  # missing_column | unexpected_column | empty | missing_values | type | infinite | range | unseen_categories
    severity: str  # error | warning
    expected: str
    observed: str
    rows: int = 0
    examples: tuple[Any, ...] = ()


@dataclass
class ValidationReport:
    """The outcome of ``validate``: ``passed`` unless an error-severity anomaly was found.

    Example:
        >>> import pandas as pd
        >>> from modelcycle.data.schema import infer_schema
        >>> df = pd.DataFrame({"age": [30, 41]})
        >>> validate(df, infer_schema(df)).passed
        True
    """

    anomalies: list[Anomaly] = field(default_factory=list)
    rows: int = 0

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise ``DataValidationError`` naming the first problems when any error was found."""
        if self.errors:
            shown = "; ".join(f"{a.column}: {a.check} (expected {a.expected}, observed {a.observed})" for a in self.errors[:3])
            more = f" and {len(self.errors) - 3} more" if len(self.errors) > 3 else ""
            raise DataValidationError(f"data broke its schema: {shown}{more}", report=self)

    def to_html(self, path: str | None = None) -> str:
        """A readable page: the anomalies, and a chart per failing column."""
        from modelcycle.data.report import validation_html, write

        return write(validation_html(self), path)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rows": self.rows, "errors": len(self.errors), "warnings": len(self.warnings),
                "anomalies": [{**asdict(a), "examples": [_plain(x) for x in a.examples]} for a in self.anomalies]}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


@dataclass
class _Tally:
    missing: int = 0
    total: int = 0
    bad: dict[str, list[Any]] = field(default_factory=dict)  # check -> [count, examples, detail]

    def add(self, check: str, mask: Any, values: Any, detail: str = "") -> None:
        n = int(np.count_nonzero(mask))
        if not n:
            return
        entry = self.bad.setdefault(check, [0, [], detail])
        entry[0] += n
        if len(entry[1]) < EXAMPLES:  # a few distinct offending values
            for value in values[mask][:1000].tolist():
                if value not in entry[1]:
                    entry[1].append(value)
                    if len(entry[1]) == EXAMPLES:
                        break


def _check_batch(col: ColumnSchema, series: Any, tally: _Tally) -> None:
    import pandas as pd

    tally.total += len(series)
    nulls = series.isna().to_numpy()
    tally.missing += int(nulls.sum())
    present = series[~nulls]
    if col.type in ("numeric", "integer"):
        if pd.api.types.is_numeric_dtype(present.dtype) and not pd.api.types.is_bool_dtype(present.dtype):
            numbers = present.to_numpy(dtype=np.float64, na_value=np.nan)
            raw = numbers
            ok = np.ones(len(numbers), dtype=bool)
        else:  # text or mixed values: whatever does not parse as a number is a type error
            numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            raw = present.to_numpy(dtype=object)
            not_number = np.isnan(numbers)
            tally.add("type", not_number, raw, f"{col.type} values")
            ok = ~not_number
        inf = ok & np.isinf(numbers)
        tally.add("infinite", inf, raw, "finite numbers")
        finite = ok & ~inf
        if col.type == "integer":
            tally.add("type", finite & (numbers != np.round(numbers)), raw, "whole numbers")
        if col.min is not None:
            tally.add("range", finite & (numbers < col.min), raw, f">= {col.min}")
        if col.max is not None:
            tally.add("range", finite & (numbers > col.max), raw, f"<= {col.max}")
    elif col.type == "datetime":
        raw = present.to_numpy(dtype=object)
        parsed = pd.to_datetime(present, errors="coerce", utc=True)
        tally.add("type", parsed.isna().to_numpy(), raw, "dates and times")
    if col.categories is not None:
        allowed = {str(c) for c in col.categories}
        if isinstance(present.dtype, pd.CategoricalDtype):  # check the few categories, not every row
            names = np.array([str(c) for c in present.cat.categories], dtype=object)
            unknown_codes = np.flatnonzero(~np.isin(names, list(allowed)))
            mask = np.isin(present.cat.codes.to_numpy(), unknown_codes)
            values = present.to_numpy(dtype=object)
        else:
            values = present.astype(str).to_numpy(dtype=object)
            mask = ~np.isin(values, list(allowed))
        tally.add("unseen_categories", mask, values, f"one of {len(allowed)} categories")


def _summarise(col: ColumnSchema, tally: _Tally, report: ValidationReport) -> None:
    if tally.total and tally.missing:
        share = tally.missing / tally.total
        if share > col.max_missing:
            expected = "no missing values" if not col.nullable else f"at most {col.max_missing:.1%} missing"
            report.anomalies.append(Anomaly(col.name, "missing_values", "error", expected, f"{share:.1%} missing", tally.missing))
    present = tally.total - tally.missing
    for check, (count, examples, detail) in tally.bad.items():
        severity = "error"
        observed = f"{count:,} row(s)"
        if check == "unseen_categories":
            share = count / present if present else 0.0
            observed = f"{share:.1%} of values ({count:,} rows) unseen"
            severity = "error" if share > col.max_unseen else "warning"
            detail = f"{detail}, at most {col.max_unseen:.1%} unseen"
        report.anomalies.append(Anomaly(col.name, check, severity, detail, observed, count, tuple(examples)))


def validate(data: Any, schema: Schema | str | os.PathLike[str], batch_rows: int = 500_000, progress: Any = None) -> ValidationReport:
    """Check data (DataFrame, Arrow table or CSV/Parquet path, read in batches) against ``schema`` (or the YAML file it is in).

    ``progress``, when given, is called with the number of rows read after each batch.

    Raises:
        InvalidInputError: the data cannot be read at all.
    """
    if isinstance(schema, (str, os.PathLike)):
        schema = Schema.load(schema)
    if not isinstance(schema, Schema):
        raise InvalidInputError(f"schema must be a Schema or the path of its YAML file, not {type(schema).__name__}")
    report = ValidationReport()
    tallies: dict[str, _Tally] = {}
    seen_columns: list[str] | None = None
    for batch in iter_batches(data, batch_rows):
        report.rows += len(batch)
        if progress is not None:
            progress(report.rows)
        batch = batch.rename(columns=str)
        if seen_columns is None:
            seen_columns = list(batch.columns)
        for name, col in schema.columns.items():
            if name in batch.columns:
                _check_batch(col, batch[name], tallies.setdefault(name, _Tally()))
    seen_columns = seen_columns or []
    if report.rows == 0:
        report.anomalies.append(Anomaly("*", "empty", "error", "at least one row", "no rows"))
    for name, col in schema.columns.items():
        if name not in seen_columns:
            if col.required:
                report.anomalies.append(Anomaly(name, "missing_column", "error", "the column", "absent"))
            continue
        _summarise(col, tallies.get(name, _Tally()), report)
    for name in seen_columns:
        if name not in schema.columns:
            report.anomalies.append(Anomaly(name, "unexpected_column", "warning", "not in the schema", "present"))
    from modelcycle import plugins

    plugins.publish("data.validated", report)  # inside a run, tracking logs it
    return report
