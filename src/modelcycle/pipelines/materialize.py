"""Step outputs stored by type: DataFrame → Parquet, ndarray → npy, model → model package, JSON-able → JSON.

Anything else needs a materializer::

    import modelcycle as mc

    mc.register_materializer(
        MyVocabulary,
        save=lambda vocab, folder: (folder / "vocab.txt").write_text("\\n".join(vocab.words)),
        load=lambda folder: MyVocabulary((folder / "vocab.txt").read_text().split("\\n")),
    )

``save(obj, folder)`` writes files into an empty folder; ``load(folder)`` reads them back. Tuples,
lists and dicts whose items are all storable are stored item by item.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle._hashing import hash_json
from modelcycle.errors import InvalidInputError
from modelcycle.models.trust import Trust

__all__ = ["Materializer", "Stored", "find_materializer", "load_output", "register_materializer", "save_output"]


@dataclass(frozen=True)
class Materializer:
    name: str
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    matches: Callable[[Any], bool]
    dump: Callable[[Any], dict[str, bytes] | None] | None = None  # in memory, when small enough: no temporary files
    trusted: bool = False  # save and load take the step's Trust as a third argument (model packages)


@dataclass
class Stored:
    """An output written to the artifact store: its kind, its files (name → sha256), and one fingerprint."""

    kind: str
    files: dict[str, str]
    fingerprint: str
    items: list[Stored] | dict[str, Stored] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "files": self.files, "fingerprint": self.fingerprint, "meta": self.meta}
        if isinstance(self.items, list):
            out["items"] = [i.to_dict() for i in self.items]
        elif isinstance(self.items, dict):
            out["items"] = {k: v.to_dict() for k, v in self.items.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stored:
        items = d.get("items")
        parsed: list[Stored] | dict[str, Stored] | None = None
        if isinstance(items, list):
            parsed = [cls.from_dict(i) for i in items]
        elif isinstance(items, dict):
            parsed = {k: cls.from_dict(v) for k, v in items.items()}
        return cls(d["kind"], dict(d.get("files") or {}), d["fingerprint"], parsed, dict(d.get("meta") or {}))


def _is_jsonable(obj: Any) -> bool:
    if obj is None or isinstance(obj, (bool, int, str)):
        return True
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, (list, tuple)):
        return all(_is_jsonable(x) for x in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _is_jsonable(v) for k, v in obj.items())
    return False


def _pandas(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and type(obj).__name__ == "DataFrame"


def _numpy(obj: Any) -> bool:
    return type(obj).__module__ == "numpy" and type(obj).__name__ == "ndarray" and obj.dtype != object


def _model(obj: Any) -> bool:
    try:
        from modelcycle.models.flavours import flavour_for

        return flavour_for(obj).name != "python" or _is_python_model(obj)
    except (InvalidInputError, ImportError):
        return False


def _is_python_model(obj: Any) -> bool:
    from modelcycle.models.python_model import PythonModel

    return isinstance(obj, PythonModel)


_IN_MEMORY = 256 << 20  # frames and arrays up to this size are encoded in memory, larger ones through a file


def _write_frame(obj: Any, sink: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(obj)  # a RangeIndex is kept as metadata, any other index as columns
    # Dictionary encoding pays for text and categories; tried on numbers with many distinct values it
    # costs 3-5x the write and saves nothing.
    encode = [f.name for f in table.schema
              if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)]
    # Floating-point columns barely compress and cost the most to try: stored plain; the rest with snappy.
    codecs = {f.name: ("none" if pa.types.is_floating(f.type) else "snappy") for f in table.schema}
    pq.write_table(table, sink, use_dictionary=encode or False, write_statistics=False, compression=codecs)


def _save_frame(obj: Any, folder: Path) -> None:
    _write_frame(obj, folder / "data.parquet")


def _dump_frame(obj: Any) -> dict[str, bytes] | None:
    import pyarrow as pa

    if obj.memory_usage(index=True, deep=False).sum() > _IN_MEMORY:
        return None
    sink = pa.BufferOutputStream()
    _write_frame(obj, sink)
    return {"data.parquet": sink.getvalue().to_pybytes()}


def _dump_array(obj: Any) -> dict[str, bytes] | None:
    import io

    import numpy as np

    if obj.nbytes > _IN_MEMORY:
        return None
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=False)
    return {"data.npy": buf.getvalue()}


def _dump_json(obj: Any) -> dict[str, bytes]:
    return {"data.json": json.dumps({"value": obj, "tuple": isinstance(obj, tuple)}, sort_keys=True).encode()}


def _load_frame(folder: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(folder / "data.parquet")


def _save_array(obj: Any, folder: Path) -> None:
    import numpy as np

    np.save(folder / "data.npy", obj, allow_pickle=False)


def _load_array(folder: Path) -> Any:
    import numpy as np

    return np.load(folder / "data.npy", allow_pickle=False)


def _save_model(obj: Any, folder: Path, trust: Trust) -> None:
    from modelcycle.models import save_model

    if _is_python_model(obj) and not trust.pickle:
        raise InvalidInputError(
            f"the step returned a {type(obj).__name__}, which can only be stored with pickle (and loading a pickle runs code); "
            "declare it on the step to allow that: @mc.step(allow_pickle=True)"
        )
    folder.rmdir()
    save_model(obj, folder, allow_pickle=trust.pickle and _is_python_model(obj), trusted_types=sorted(trust.types))


def _load_model(folder: Path, trust: Trust) -> Any:
    from modelcycle.models import load_package

    # What the stored package may build is what the producing step declares, never what the cache row or the package says.
    return load_package(folder, trust=trust, estimator=True).raw  # a fitted transformer is an output too


def _save_json(obj: Any, folder: Path) -> None:
    (folder / "data.json").write_text(json.dumps({"value": obj, "tuple": isinstance(obj, tuple)}, sort_keys=True))


def _load_json(folder: Path) -> Any:
    doc = json.loads((folder / "data.json").read_text())
    return tuple(doc["value"]) if doc.get("tuple") else doc["value"]


_BUILTIN = [
    Materializer("json", _save_json, _load_json, _is_jsonable, _dump_json),
    Materializer("dataframe", _save_frame, _load_frame, _pandas, _dump_frame),
    Materializer("ndarray", _save_array, _load_array, _numpy, _dump_array),
    Materializer("model", _save_model, _load_model, _model, trusted=True),
]
_custom: list[tuple[type, Materializer]] = []


def register_materializer(cls: type, save: Callable[[Any, Path], None], load: Callable[[Path], Any], name: str | None = None) -> None:
    """Teach pipelines to store instances of ``cls``: ``save(obj, folder)`` writes files, ``load(folder)`` reads them.

    A materializer registered for a class also serves its subclasses; the newest registration wins.
    """
    if not isinstance(cls, type):
        raise InvalidInputError(f"register_materializer needs a class, not {type(cls).__name__}")
    key = name or f"{cls.__module__}.{cls.__qualname__}"
    _custom.insert(0, (cls, Materializer(key, save, load, lambda obj, c=cls: isinstance(obj, c))))


def find_materializer(obj: Any) -> Materializer | None:
    for cls, mat in _custom:
        if isinstance(obj, cls):
            return mat
    for mat in _BUILTIN:
        if mat.matches(obj):
            return mat
    return None


def _by_name(name: str) -> Materializer:
    for _, mat in _custom:
        if mat.name == name:
            return mat
    for mat in _BUILTIN:
        if mat.name == name:
            return mat
    raise InvalidInputError(f"no materializer named {name!r} is registered in this process; register it before loading")


def _container_items(obj: Any) -> list[tuple[str, Any]] | None:
    if isinstance(obj, (tuple, list)) and not _is_jsonable(obj):
        return [(str(i), x) for i, x in enumerate(obj)]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and not _is_jsonable(obj):
        return list(obj.items())
    return None


def save_output(obj: Any, put_file: Callable[[Path, str], str], step: str, prefix: str = "outputs",
                put_bytes: Callable[[bytes, str], str] | None = None, trust: Trust | None = None) -> Stored:
    """Write ``obj`` through its materializer: ``put_file(local_path, artifact_name) -> sha256`` for files,
    ``put_bytes(data, artifact_name) -> sha256`` for what a built-in materializer encodes in memory.

    Raises:
        InvalidInputError: no materializer stores this type (naming the step and how to add one).
    """
    items = _container_items(obj)
    if items is not None:
        stored = {k: save_output(v, put_file, step, f"{prefix}/{k}", put_bytes, trust) for k, v in items}
        kind = "dict" if isinstance(obj, dict) else "tuple" if isinstance(obj, tuple) else "list"
        fingerprint = hash_json({"kind": kind, "items": {k: s.fingerprint for k, s in stored.items()}})
        return Stored(kind, {}, fingerprint, stored if kind == "dict" else list(stored.values()))
    mat = find_materializer(obj)
    if mat is None:
        raise InvalidInputError(
            f"step {step!r} returned a {type(obj).__module__}.{type(obj).__qualname__}, which modelcycle cannot store; "
            f"return a DataFrame, an array, a model or JSON-able values, or register a materializer: "
            f"mc.register_materializer({type(obj).__qualname__}, save=..., load=...)"
        )
    files: dict[str, str] = {}
    dumped = mat.dump(obj) if mat.dump is not None and put_bytes is not None else None
    if dumped is not None:
        assert put_bytes is not None
        for rel, data in sorted(dumped.items()):
            files[rel] = put_bytes(data, f"{prefix}/{rel}")
        return Stored(mat.name, files, hash_json({"kind": mat.name, "files": files}))
    tmp = Path(tempfile.mkdtemp(prefix="modelcycle-output-"))
    try:
        folder = tmp / "out"
        folder.mkdir()
        if mat.trusted:
            try:
                mat.save(obj, folder, trust or Trust())  # type: ignore[call-arg]
            except InvalidInputError as e:
                raise InvalidInputError(f"step {step!r}: {e}") from None
        else:
            mat.save(obj, folder)
        for root, _, names in os.walk(folder):
            for n in sorted(names):
                path = Path(root) / n
                rel = path.relative_to(folder).as_posix()
                files[rel] = put_file(path, f"{prefix}/{rel}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Stored(mat.name, files, hash_json({"kind": mat.name, "files": files}))


def load_output(stored: Stored, download: Callable[[str, Path], None], trust: Trust | None = None) -> Any:
    """Read an output back: ``download(sha256, local_path)`` fetches (and verifies) each file; a model
    package may build only what ``trust`` (the producing step's declaration) allows."""
    if stored.items is not None:
        if isinstance(stored.items, dict):
            return {k: load_output(v, download, trust) for k, v in stored.items.items()}
        values = [load_output(v, download, trust) for v in stored.items]
        return tuple(values) if stored.kind == "tuple" else values
    mat = _by_name(stored.kind)
    tmp = Path(tempfile.mkdtemp(prefix="modelcycle-input-"))
    try:
        folder = tmp / "out"
        for rel, digest in stored.files.items():
            from modelcycle.store.artifacts.base import safe_artifact_path

            download(digest, folder / safe_artifact_path(rel))
        folder.mkdir(exist_ok=True)
        return mat.load(folder, trust or Trust()) if mat.trusted else mat.load(folder)  # type: ignore[call-arg]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
