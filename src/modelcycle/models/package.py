"""Model packages: a folder with the model in a safe format, its signature, profile, requirements
and a manifest of every file's sha256 — verified in full before any byte of the model is parsed.

::

    model/
      manifest.json         flavour, signature, requirements, sha256 and size of every other file
      model.skops           (or model.json, model.txt, weights.safetensors, python_model.pkl)
      profile.bin           profile of the reference data, when given
      input_example.json    a few rows, when given
      requirements.txt      pip requirements with the versions it was saved with

The package's hash is the sha256 of ``manifest.json``; it covers every file through the hashes
the manifest lists, so one hash pins the whole package.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle._hashing import sha256_bytes, sha256_file
from modelcycle.errors import InvalidInputError, ModelcycleWarning, ModelError, ModelIntegrityError, UnsafeModelError, UnsafePathError
from modelcycle.models.signature import Signature, infer_signature
from modelcycle.models.trust import Trust, check_loaded

__all__ = ["MANIFEST", "LoadedModel", "Manifest", "load_package", "prediction_columns", "save_model", "verify_package"]

MANIFEST = "manifest.json"
FORMAT = 1
PROFILE = "profile.bin"
PREDICTIONS = "predictions.bin"  # profile of the model's predictions on its reference data (prediction drift)
EXAMPLE = "input_example.json"
REQUIREMENTS = "requirements.txt"
_MAX_MANIFEST = 16 << 20
_EXAMPLE_ROWS = 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ALTERNATES = {"xgboost": ("xgboost-cpu",)}  # other distributions of the same module


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """The verified description of a package. ``hash`` is the sha256 of manifest.json itself."""

    hash: str
    flavour: str
    model_class: str
    files: dict[str, FileEntry]
    signature: Signature | None
    requirements: dict[str, str]
    flavour_meta: dict[str, Any]
    has_predict_proba: bool
    input_kind: str
    created: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_profile(self) -> bool:
        return PROFILE in self.files

    @property
    def has_prediction_profile(self) -> bool:
        return PREDICTIONS in self.files

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        digest = sha256_bytes(raw)
        try:
            d = json.loads(raw)
            if not isinstance(d, dict) or d.get("format") != FORMAT:
                raise ValueError(f"unknown format {d.get('format') if isinstance(d, dict) else None!r}")
            files: dict[str, FileEntry] = {}
            for name, entry in d["files"].items():
                if _safe_name(name) != name or name == MANIFEST:
                    raise ValueError(f"unsafe file name {name!r}")
                sha, size = entry["sha256"], entry["size"]
                if not (isinstance(sha, str) and _HEX64.match(sha)) or not isinstance(size, int) or size < 0:
                    raise ValueError(f"bad entry for {name!r}")
                files[name] = FileEntry(sha, size)
            sig = d.get("signature")
            return cls(
                hash=digest, flavour=str(d["flavour"]), model_class=str(d.get("model_class", "")), files=files,
                signature=Signature.from_dict(sig) if sig else None,
                requirements={str(k): str(v) for k, v in d.get("requirements", {}).items()},
                flavour_meta=dict(d.get("flavour_meta") or {}), has_predict_proba=bool(d.get("has_predict_proba")),
                input_kind=str(d.get("input_kind", "frame")), created=float(d.get("created", 0.0)),
                metadata=dict(d.get("metadata") or {}),
            )
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as e:
            raise ModelIntegrityError(f"{MANIFEST} is not a valid model manifest ({e}); refusing to load the package") from None


def _safe_name(name: str) -> str:
    from modelcycle.store.artifacts.base import safe_artifact_path

    return safe_artifact_path(name)


@functools.lru_cache(maxsize=64)
def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in (name, *_ALTERNATES.get(name, ())):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in ("modelcycle", "pandas", *names):
        found = _version(name)
        if found is not None:
            out[name] = found
    return out


def _frame(data: Any, what: str) -> Any:
    import numpy as np
    import pandas as pd

    if data is None or isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame(data)
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    array = np.asarray(data)
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
    raise InvalidInputError(f"{what} must be a DataFrame or a 2-D array, not {type(data).__name__}")


def _files(folder: Path) -> list[str]:
    out = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        for d in dirs:
            if (Path(root) / d).is_symlink():
                raise ModelIntegrityError(f"{Path(root, d).relative_to(folder)} is a symbolic link; packages hold only plain files")
        for n in names:
            p = Path(root) / n
            if p.is_symlink() or not p.is_file():
                raise ModelIntegrityError(f"{p.relative_to(folder)} is not a plain file; packages hold only plain files")
            out.append(p.relative_to(folder).as_posix())
    return sorted(out)


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    flavour: str | None = None,
    signature: Signature | None = None,
    input_example: Any = None,
    reference_data: Any = None,
    allow_pickle: bool = False,
    trusted_types: list[str] | None = None,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write ``model`` as a package in the folder ``path`` (created; it must not exist or be empty).

    Args:
        model: a scikit-learn estimator or pipeline, an XGBoost or LightGBM model, a PyTorch
            module, or a :class:`~modelcycle.models.PythonModel` (needs ``allow_pickle=True``).
        flavour: force a flavour by name instead of picking one from the model's type.
        signature: the input columns; inferred from ``reference_data`` or ``input_example`` when not given.
        input_example: a few rows of input, stored with the package.
        reference_data: the training features; its profile is stored for drift and skew checks.
        allow_pickle: consent to pickle a PythonModel.
        trusted_types: type names (``module.Class``) the model may build beyond the library allow-list
            (see :mod:`modelcycle.models.trust`); whoever loads the model must name them too.
        artifacts: files a PythonModel needs, ``{"name": local_path}``; copied in, given to ``load_context``.
        init_kwargs: JSON-able arguments that rebuild a PyTorch module before its weights are loaded.
        metadata: free JSON-able notes stored in the manifest.

    Raises:
        UnsafeModelError: the model would need pickle without ``allow_pickle``, or holds unaudited types.
        InvalidInputError: the folder is not empty, or the model is of no known kind.
    """
    from modelcycle.models.flavours import flavour_for

    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError(f"{target} already exists and is not an empty folder; choose a new path for the package")
    chosen = flavour_for(model, flavour)
    example = _frame(input_example, "input_example")
    reference = _frame(reference_data, "reference_data")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".modelcycle-package-", dir=target.parent))
    try:
        options = {"allow_pickle": allow_pickle, "trusted_types": sorted(Trust.of(False, trusted_types).types),
                   "init_kwargs": dict(init_kwargs or {})}
        check_loaded(model, f"this {type(model).__name__}", estimator=True)  # what would be refused on load is refused now
        meta = chosen.save(model, staging, options)
        predictor = chosen.predictor(model) if hasattr(chosen, "predictor") else model  # predicts on frames, as the package will
        if artifacts:
            if chosen.name != "python":
                raise InvalidInputError("artifacts= is for PythonModel packages; other flavours carry everything in the model file")
            meta["artifacts"] = _copy_artifacts(artifacts, staging)
        sample = reference if reference is not None else example
        input_kind = "frame"
        raw_input = input_example if input_example is not None else reference_data
        if raw_input is not None and not hasattr(raw_input, "columns") and not isinstance(raw_input, Mapping):
            input_kind = "array"
        if sample is not None:
            prediction = None
            try:
                head = sample.head(50)
                prediction = predictor.predict(head if input_kind == "frame" else head.to_numpy())
            except Exception as e:
                # a PythonModel may need load_context first, a bare XGBoost Booster takes a DMatrix (its package predicts on
                # frames); any other model must predict on its own data, or it could never be served
                if chosen.name != "python" and not (chosen.name == "xgboost" and type(model).__name__ == "Booster"):
                    first = str(e).splitlines()[0][:300] if str(e) else ""
                    raise InvalidInputError(
                        f"this {type(model).__name__} cannot predict on its {'reference_data' if reference is not None else 'input_example'} "
                        f"({type(e).__name__}: {first}); log a fitted model, with the feature columns it was trained on (not the target)"
                    ) from None
            if signature is None:
                signature = infer_signature(sample, prediction)
        if example is not None:
            (staging / EXAMPLE).write_text(example.head(_EXAMPLE_ROWS).to_json(orient="split", index=False, date_format="iso"))
        if reference is not None:
            from modelcycle.data import profile

            (staging / PROFILE).write_bytes(profile(reference).to_bytes())
            predicted = _prediction_frame(predictor, reference if input_kind == "frame" else reference.to_numpy())
            if predicted is not None:
                (staging / PREDICTIONS).write_bytes(profile(predicted).to_bytes())
        requirements = _versions(tuple(chosen.requirements))
        (staging / REQUIREMENTS).write_text("".join(f"{k}=={v}\n" for k, v in requirements.items() if k != "python"))
        files = {name: {"sha256": sha256_file(staging / name), "size": (staging / name).stat().st_size} for name in _files(staging)}
        has_proba = bool(getattr(model, "predict_proba", None)) if chosen.name != "lightgbm" else meta.get("kind") == "classifier"
        manifest = {
            "format": FORMAT, "flavour": chosen.name, "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "created": time.time(), "signature": signature.to_dict() if signature else None, "input_kind": input_kind,
            "has_predict_proba": has_proba, "requirements": requirements, "flavour_meta": meta,
            "metadata": dict(metadata or {}), "files": files,
        }
        raw = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
        (staging / MANIFEST).write_bytes(raw)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Manifest.parse(raw)


def prediction_columns(prediction: Any, proba: Any, classes: Sequence[Any]) -> Any:
    """Predictions as the prediction log stores them: ``prediction`` and ``proba.<class>`` columns."""
    import numpy as np
    import pandas as pd

    pred = np.asarray(prediction)
    frame = pd.DataFrame({"prediction": pred if pred.ndim == 1 else list(pred)})
    if proba is not None:
        p = np.asarray(proba, dtype=float)
        for i, c in enumerate(classes or range(p.shape[1])):
            frame[f"proba.{c}"] = p[:, i]
    return frame


def _prediction_frame(model: Any, data: Any, rows: int = 100_000) -> Any:
    """The model's predictions on (a sample of) its reference data, or None when it cannot predict on it."""
    try:
        sample = data[:rows] if not hasattr(data, "iloc") else data.iloc[:rows]
        prediction = model.predict(sample)
        proba = model.predict_proba(sample) if callable(getattr(model, "predict_proba", None)) else None
        classes = [str(c) for c in getattr(model, "classes_", [])]
        if proba is not None and len(classes) != getattr(proba, "shape", (0, 0))[1]:
            classes = []
        return prediction_columns(prediction, proba, classes)
    except Exception:  # a model that cannot predict on its reference data still saves; prediction drift is then skipped
        return None


def _copy_artifacts(artifacts: Mapping[str, str | os.PathLike[str]], staging: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, local in artifacts.items():
        rel = "artifacts/" + _safe_name(str(name))
        src = Path(local)
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=False)
        elif src.is_file():
            shutil.copyfile(src, dst)
        else:
            raise InvalidInputError(f"artifact {name!r}: {str(src)!r} does not exist")
        out[str(name)] = rel
    return out


def verify_package(path: str | os.PathLike[str], expected_hash: str | None = None) -> Manifest:
    """Check every file of a package against its manifest (and the manifest against ``expected_hash``).

    Nothing of the model is parsed here; only this function's success lets a flavour read it.

    Raises:
        ModelIntegrityError: naming the changed, added or removed file, or the changed manifest.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ModelIntegrityError(f"{folder} is not a model package: it has no {MANIFEST}")
    if manifest_path.stat().st_size > _MAX_MANIFEST:
        raise ModelIntegrityError(f"{MANIFEST} is larger than {_MAX_MANIFEST >> 20} MB; refusing to read it")
    raw = manifest_path.read_bytes()
    if expected_hash is not None and sha256_bytes(raw) != expected_hash:
        raise ModelIntegrityError(
            f"{MANIFEST} of {folder} was changed after the model was saved (sha256 {sha256_bytes(raw)[:12]}…, "
            f"registered {expected_hash[:12]}…); refusing to load it"
        )
    manifest = Manifest.parse(raw)
    try:
        present = set(_files(folder)) - {MANIFEST}
    except UnsafePathError as e:
        raise ModelIntegrityError(str(e)) from None
    listed = set(manifest.files)
    added, removed = sorted(present - listed), sorted(listed - present)
    if added or removed:
        parts = ([f"files not in the manifest: {', '.join(added)}"] if added else []) + (
            [f"files missing: {', '.join(removed)}"] if removed else [])
        raise ModelIntegrityError(f"model package {folder} does not match its manifest ({'; '.join(parts)}); refusing to load it")
    for name, entry in sorted(manifest.files.items()):
        file = folder / name
        if file.stat().st_size != entry.size or sha256_file(file) != entry.sha256:
            raise ModelIntegrityError(f"{name} in {folder} was changed after the model was saved (its sha256 no longer matches); refusing to load it")
    return manifest


def _check_requirements(manifest: Manifest) -> None:
    current = _versions(tuple(k for k in manifest.requirements if k not in ("python", "modelcycle", "pandas")))
    differ = []
    for name, saved in manifest.requirements.items():
        now = current.get(name)
        if name == "python" or now is None:
            continue
        if saved.split(".")[:2] != now.split(".")[:2]:
            differ.append(f"{name} {saved} (now {now})")
    if differ:
        warnings.warn("the model was saved with " + ", ".join(differ) + "; predictions may differ", ModelcycleWarning, stacklevel=3)


class LoadedModel:
    """A verified, loaded model: ``predict`` checks input against the signature first.

    Attributes:
        signature: the input columns (None when the package has none).
        manifest: the verified manifest; ``hash`` pins the package.
        raw: the underlying model object (for example the scikit-learn Pipeline).
        version: the registry's ModelVersion when loaded through ``models:/``, else None.
    """

    def __init__(self, raw: Any, manifest: Manifest, path: Path, version: Any = None):
        self.raw = raw
        self.manifest = manifest
        self.path = path
        self.version = version
        self._profile: Any = None

    def __repr__(self) -> str:
        where = f"{self.version.name}/{self.version.version}" if self.version is not None else str(self.path)
        return f"<LoadedModel {self.manifest.flavour} {self.manifest.model_class} {where} sha256={self.hash[:12]}>"

    @property
    def hash(self) -> str:
        return self.manifest.hash

    @property
    def flavour(self) -> str:
        return self.manifest.flavour

    @property
    def signature(self) -> Signature | None:
        return self.manifest.signature

    @property
    def profile(self) -> Any:
        """The profile of the reference data the model was logged with (None when there was none)."""
        if self._profile is None and self.manifest.has_profile:
            from modelcycle.data import Profile

            self._profile = Profile.from_bytes((self.path / PROFILE).read_bytes())
        return self._profile

    @property
    def prediction_profile(self) -> Any:
        """The profile of the model's own predictions on its reference data (None when there was none)."""
        if self.manifest.has_prediction_profile:
            from modelcycle.data import Profile

            return Profile.from_bytes((self.path / PREDICTIONS).read_bytes())
        return None

    @property
    def input_example(self) -> Any:
        import pandas as pd

        file = self.path / EXAMPLE
        return pd.read_json(file, orient="split") if file.is_file() else None

    def prepare(self, frame: Any, checked: bool = False) -> Any:
        """Input checked against the signature (unless ``checked`` says it was), in the shape the model was trained on."""
        if self.signature is not None and not checked:
            frame = self.signature.check(frame)
        if self.manifest.input_kind == "array" and hasattr(frame, "to_numpy"):
            return frame.to_numpy()
        return frame

    @functools.cached_property
    def _predict(self) -> Any:
        if self.manifest.flavour == "python":  # either form of PythonModel.predict: model_input alone, or MLflow's context first
            from modelcycle.models.python_model import BoundModel, ModelContext

            return BoundModel(self.raw, ModelContext(self.path, _package_paths(self.manifest, self.path))).predict
        return self.raw.predict

    def predict(self, frame: Any) -> Any:
        return self.predict_prepared(self.prepare(frame))

    def predict_prepared(self, prepared: Any) -> Any:
        """``predict`` on input :meth:`prepare` returned."""
        return self._predict(prepared)

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba":
            if not self.manifest.has_predict_proba:
                raise AttributeError(f"this {self.manifest.model_class} has no predict_proba")
            return lambda frame: self.raw.predict_proba(self.prepare(frame))
        raise AttributeError(name)


def load_package(path: str | os.PathLike[str], trust: bool | Trust = False, expected_hash: str | None = None, version: Any = None,
                 trusted_types: Sequence[str] | None = None, estimator: bool = False) -> LoadedModel:
    """Verify a package folder, then load it with its flavour's safe loader.

    What the model file may build is decided here, never by the package: the library allow-list of
    :mod:`modelcycle.models.trust`, plus ``trusted_types``; a pickled package needs ``trust=True``.

    Args:
        trust: allow a pickled PythonModel to load (it can run any code).
        expected_hash: the sha256 the manifest must have (the registry's record of it).
        trusted_types: type names (``module.Class``) the model may build beyond the library allow-list.
        estimator: a pipeline step's stored estimator (a fitted transformer need not predict; it must be of the flavour's kind).

    Raises:
        ModelIntegrityError: a file or the manifest changed, files were added or removed, or the manifest names a file it does not verify.
        UnsafeModelError: the package needs pickle and ``trust`` is False, holds types the loader does not allow, or is not a model.
    """
    from modelcycle.models.flavours import get_flavour
    from modelcycle.models.python_model import ModelContext

    allowed = trust if isinstance(trust, Trust) else Trust.of(bool(trust), trusted_types)
    if isinstance(trust, Trust) and trusted_types:
        allowed = allowed | Trust.of(False, trusted_types)
    folder = Path(path)
    manifest = verify_package(folder, expected_hash)
    try:
        flavour = get_flavour(manifest.flavour)
    except Exception:
        raise ModelError(f"the package's flavour {manifest.flavour!r} is not available here") from None
    artifacts = _package_paths(manifest, folder)
    _check_requirements(manifest)
    raw = flavour.load(folder, dict(manifest.flavour_meta), allowed)
    if manifest.flavour == "python":
        from modelcycle.models.python_model import takes_context

        takes_context(raw)  # a predict of another form is refused now, not at the first prediction
        if hasattr(raw, "load_context"):
            raw.load_context(ModelContext(folder, artifacts))
    what = f"the model package {folder.name}"
    if estimator and not (flavour.handles(raw) or callable(getattr(raw, "predict", None))):
        raise UnsafeModelError(f"{what} holds a {type(raw).__module__}.{type(raw).__qualname__}, not a {manifest.flavour} model; refusing to load it")
    check_loaded(raw, what, proba=manifest.has_predict_proba and manifest.flavour != "python", estimator=estimator)
    return LoadedModel(raw, manifest, folder, version)


def _package_paths(manifest: Manifest, folder: Path) -> dict[str, Path]:
    """Every path the manifest's flavour metadata names must be one of the files it verified; the artifacts' local paths.

    Raises:
        ModelIntegrityError: a path outside the package (absolute, ``..``) or a file the manifest does not list.
    """
    meta = manifest.flavour_meta
    named = meta.get("file")
    if named is not None and named not in manifest.files:
        raise ModelIntegrityError(f"the manifest names the model file {str(named)[:200]!r}, which is not one of the package's verified files; "
                                  "refusing to load it")
    artifacts = meta.get("artifacts") or {}
    if not isinstance(artifacts, dict):
        raise ModelIntegrityError("the manifest's artifacts are not a mapping of names to files; refusing to load the package")
    out: dict[str, Path] = {}
    for key, rel in artifacts.items():
        rel = str(rel)
        if rel not in manifest.files and not any(f.startswith(rel.rstrip("/") + "/") for f in manifest.files):
            raise ModelIntegrityError(f"the manifest's artifact {str(key)[:100]!r} points at {rel[:200]!r}, which is not in the package; "
                                      "refusing to load it")
        out[str(key)] = folder / _safe_name(rel)
    return out
