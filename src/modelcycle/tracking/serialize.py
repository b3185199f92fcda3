"""Turning Python objects (text, dicts, tables, figures, datasets) into artifact bytes and fingerprints."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from modelcycle._hashing import CHUNK
from modelcycle.entities import DatasetInput
from modelcycle.errors import InvalidInputError

__all__ = ["dataset_input", "dict_bytes", "figure_bytes", "table_bytes"]


def dict_bytes(data: Any, name: str) -> bytes:
    """A dict as JSON, or YAML when ``name`` ends in .yaml/.yml."""
    if name.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    try:
        return json.dumps(data, indent=2, default=_json_default, allow_nan=True).encode()
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"cannot write {name!r} as JSON: {e}") from None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def table_bytes(table: Any, name: str) -> tuple[bytes, str]:
    """A table (pandas DataFrame, pyarrow Table, dict of columns) as Parquet, CSV or JSON.

    A name without a known extension gets ``.parquet``. Returns (bytes, final name).
    """
    import pandas as pd

    if not name.endswith((".parquet", ".csv", ".json")):
        name = f"{name}.parquet"
    if hasattr(table, "to_pandas") and not isinstance(table, pd.DataFrame):
        table = table.to_pandas()
    if isinstance(table, dict):
        table = pd.DataFrame(table)
    if not isinstance(table, pd.DataFrame):
        raise InvalidInputError(
            f"log_table needs a pandas DataFrame, a pyarrow Table or a dict of columns, not {type(table).__name__}"
        )
    buf = io.BytesIO()
    if name.endswith(".csv"):
        table.to_csv(buf, index=False)
    elif name.endswith(".json"):
        buf.write(table.to_json(orient="split", index=False).encode())
    else:
        table.columns = [str(c) for c in table.columns]
        table.to_parquet(buf, index=False)
    return buf.getvalue(), name


def figure_bytes(figure: Any, name: str) -> bytes:
    """A matplotlib or plotly figure rendered to the format its name says (png by default)."""
    ext = Path(name).suffix.lower().lstrip(".") or "png"
    if hasattr(figure, "savefig"):  # matplotlib Figure
        buf = io.BytesIO()
        figure.savefig(buf, format=ext, bbox_inches="tight")
        return buf.getvalue()
    if hasattr(figure, "to_html") and hasattr(figure, "to_plotly_json"):  # plotly
        if ext == "html":
            return figure.to_html(include_plotlyjs="cdn").encode()
        try:
            return figure.to_image(format=ext)
        except Exception as e:
            raise InvalidInputError(f"cannot render the plotly figure as {ext} ({e}); name it '.html' instead") from None
    raise InvalidInputError(
        f"log_figure needs a matplotlib or plotly figure, not {type(figure).__name__}; "
        "use log_artifact for image files"
    )


def _file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_input(data: Any, name: str, role: str) -> DatasetInput:
    """Fingerprint, row count and schema of a DataFrame, array, Arrow table or CSV/Parquet file.

    The fingerprint is a sha256 over the column names, types and cell values (a file's bytes
    for paths), so equal data always gets the same fingerprint.

    Example:
        >>> import pandas as pd
        >>> a = dataset_input(pd.DataFrame({"x": [1, 2]}), "train", "train")
        >>> a.fingerprint == dataset_input(pd.DataFrame({"x": [1, 2]}), "t", "train").fingerprint
        True
    """
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise InvalidInputError(f"log_dataset: {str(path)!r} is not a file")
        rows, columns = None, ()
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path)
            rows = meta.metadata.num_rows
            columns = tuple((f.name, str(f.type)) for f in meta.schema_arrow)
        elif suffix in (".csv", ".tsv"):
            with open(path, "rb") as f:
                header = f.readline().decode(errors="replace").rstrip("\r\n")
                rows = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(CHUNK), b""))
            sep = "\t" if suffix == ".tsv" else ","
            columns = tuple((c.strip().strip('"'), "unknown") for c in header.split(sep)) if header else ()
        return DatasetInput(name, role, _file_fingerprint(path), rows, columns, str(path.resolve()))

    import numpy as np
    import pandas as pd

    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):  # pyarrow, polars
        data = data.to_pandas()
    if isinstance(data, pd.Series):
        data = data.to_frame()
    h = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        columns = tuple((str(c), str(t)) for c, t in data.dtypes.items())
        h.update(json.dumps(columns).encode())
        if len(data):
            h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        return DatasetInput(name, role, h.hexdigest(), len(data), columns, "pandas.DataFrame")
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        if arr.dtype.kind == "O":
            h.update(pd.util.hash_pandas_object(pd.DataFrame(arr.reshape(len(arr), -1)), index=False).to_numpy().tobytes())
        else:
            h.update(arr.tobytes())
        columns = (("array", f"{arr.dtype}{list(arr.shape)}"),)
        return DatasetInput(name, role, h.hexdigest(), int(arr.shape[0]) if arr.ndim else 1, columns, "numpy.ndarray")
    raise InvalidInputError(
        f"log_dataset needs a DataFrame, an array, an Arrow table or a file path, not {type(data).__name__}"
    )
