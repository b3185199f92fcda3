"""Loading never runs code: changed files are refused before parsing, and pickles never reach an unpickler.

Each malicious payload, when unpickled, creates a marker file. The tests place such payloads in
packages whose manifests were rewritten to match (an attacker who can write the folder can do
that too) and check that loading refuses them and the marker never appears.
"""

from __future__ import annotations

import builtins
import gzip
import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle._hashing import sha256_bytes, sha256_file
from modelcycle.errors import ModelError, ModelIntegrityError, UnsafeModelError
from modelcycle.models import load_package, save_model
from modelcycle.models.package import MANIFEST


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appearing proves code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def payloads(marker: Path) -> dict[str, bytes]:
    import cloudpickle
    import joblib

    raw = pickle.dumps(CreatesFile(marker))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:  # the layout of a torch.save file
        z.writestr("archive/data.pkl", raw)
        z.writestr("archive/version", "3\n")
    job = io.BytesIO()
    joblib.dump(CreatesFile(marker), job)
    return {"pickle": raw, "gzip": gzip.compress(raw), "zip": zipped.getvalue(), "joblib": job.getvalue(),
            "cloudpickle": cloudpickle.dumps(CreatesFile(marker))}


def rehash(folder: Path) -> None:
    """Rewrite the manifest so every listed hash matches the files now in the folder."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in manifest["files"]:
        manifest["files"][name] = {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def sklearn_package(tmp_path: Path, name: str = "pkg") -> tuple[Path, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    model = LogisticRegression().fit(X, (X["a"] > 0.5).astype(int))
    save_model(model, tmp_path / name, input_example=X.head())
    return tmp_path / name, X


@pytest.mark.parametrize("kind", ["pickle", "gzip", "zip", "joblib", "cloudpickle"])
@pytest.mark.parametrize("trust", [False, True])
def test_pickles_renamed_to_skops_never_run(tmp_path: Path, kind: str, trust: bool) -> None:
    marker = tmp_path / "pwned"
    folder, _ = sklearn_package(tmp_path)
    (folder / "model.skops").write_bytes(payloads(marker)[kind])
    rehash(folder)
    with pytest.raises(ModelError):
        load_package(folder, trust=trust)  # trust allows pickled PythonModels, never a pickle posing as skops
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "gzip", "zip", "joblib", "cloudpickle"])
def test_pickles_renamed_to_safetensors_never_run(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "torch"
    folder.mkdir()
    data = payloads(marker)[kind]
    (folder / "weights.safetensors").write_bytes(data)
    manifest = {"format": 1, "flavour": "pytorch", "model_class": "torch.nn.Linear",
                "flavour_meta": {"file": "weights.safetensors", "class": "torch.nn:Linear", "init_kwargs": {}},
                "files": {"weights.safetensors": {"sha256": sha256_bytes(data), "size": len(data)}}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UnsafeModelError, match="not a safetensors file"):
        load_package(folder, trust=True)
    assert not marker.exists()


@pytest.mark.parametrize("flavour", ["xgboost", "lightgbm"])
def test_pickles_renamed_to_native_tree_formats_never_run(tmp_path: Path, flavour: str) -> None:
    lib = pytest.importorskip(flavour)
    marker = tmp_path / "pwned"
    X = pd.DataFrame({"a": np.linspace(0, 1, 60), "b": np.linspace(1, 0, 60)})
    y = (X["a"] > 0.5).astype(int)
    model = lib.XGBClassifier(n_estimators=2) if flavour == "xgboost" else lib.LGBMClassifier(n_estimators=2, verbose=-1)
    model.fit(X, y)
    manifest = save_model(model, tmp_path / "pkg")
    (tmp_path / "pkg" / manifest.flavour_meta["file"]).write_bytes(payloads(marker)["pickle"])
    rehash(tmp_path / "pkg")
    with pytest.raises(ModelError):
        load_package(tmp_path / "pkg", trust=True)
    assert not marker.exists()


def test_pickled_python_model_is_refused_without_trust(tmp_path: Path) -> None:
    from modelcycle.models import PythonModel

    class Echo(PythonModel):
        def predict(self, model_input):
            return model_input

    marker = tmp_path / "pwned"
    save_model(Echo(), tmp_path / "py", allow_pickle=True)
    (tmp_path / "py" / "python_model.pkl").write_bytes(payloads(marker)["pickle"])
    rehash(tmp_path / "py")
    with pytest.raises(UnsafeModelError, match="trust=True"):
        load_package(tmp_path / "py")
    assert not marker.exists()


def test_one_changed_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder, _ = sklearn_package(tmp_path)
    data = bytearray((folder / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"model\.skops .*changed after the model was saved"):
        load_package(folder)


def test_changed_manifest_is_refused(tmp_path: Path) -> None:
    folder, _ = sklearn_package(tmp_path)
    registered = sha256_file(folder / MANIFEST)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["flavour_meta"]["trusted_types"] = ["builtins.exec"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match=r"manifest\.json .*changed after the model was saved"):
        load_package(folder, expected_hash=registered)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="not a valid model manifest"):
        load_package(folder)


def test_added_or_removed_files_are_refused(tmp_path: Path) -> None:
    folder, _ = sklearn_package(tmp_path)
    (folder / "extra.py").write_text("import os")
    with pytest.raises(ModelIntegrityError, match=r"files not in the manifest: extra\.py"):
        load_package(folder)
    (folder / "extra.py").unlink()
    (folder / "input_example.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"files missing: input_example\.json"):
        load_package(folder)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    folder, _ = sklearn_package(tmp_path)
    target = tmp_path / "elsewhere.skops"
    shutil.move(folder / "model.skops", target)
    os.symlink(target, folder / "model.skops")
    with pytest.raises(ModelIntegrityError, match="not a plain file"):
        load_package(folder)


def _function_transformer_package(tmp_path: Path, func, recorded: list[str]) -> Path:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    folder, _ = sklearn_package(tmp_path)
    sio.dump(FunctionTransformer(func=func), folder / "model.skops")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["flavour_meta"]["trusted_types"] = recorded
    (folder / MANIFEST).write_text(json.dumps(manifest))
    rehash(folder)
    return folder


def test_skops_types_not_recorded_at_save_are_refused(tmp_path: Path) -> None:
    folder = _function_transformer_package(tmp_path, builtins.eval, [])
    with pytest.raises(UnsafeModelError, match=r"not recorded when it was saved: builtins\.eval"):
        load_package(folder, trust=True)


def test_dangerous_types_are_refused_even_when_recorded(tmp_path: Path) -> None:
    import operator

    folder = _function_transformer_package(tmp_path, operator.call, ["_operator.call"])
    with pytest.raises(UnsafeModelError, match=r"can run code when loaded: _operator\.call"):
        load_package(folder, trust=True)


def test_saving_a_dangerous_type_is_refused(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UnsafeModelError, match=r"builtins\.eval"):
        save_model(FunctionTransformer(func=builtins.eval), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".modelcycle-package-")], "no staging folder is left behind"


def test_unaudited_types_need_to_be_named(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UnsafeModelError, match=r"trusted_types=\['tests.models.test_security.double'\]"):
        save_model(FunctionTransformer(func=double), tmp_path / "f")
    save_model(FunctionTransformer(func=double), tmp_path / "f", trusted_types=["tests.models.test_security.double"])
    assert load_package(tmp_path / "f").raw.transform(pd.DataFrame({"x": [2.0]}))["x"].tolist() == [4.0]


def double(x):
    return x * 2
