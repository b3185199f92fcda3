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
from tests.security import hostile


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
    with pytest.raises(UnsafeModelError, match=r"can run code when loaded: builtins\.eval"):
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


def test_unaudited_types_need_to_be_named_to_save_and_to_load(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = make_pipeline(FunctionTransformer(func=double), LinearRegression()).fit(X, [2.0, 4.0, 6.0])
    with pytest.raises(UnsafeModelError, match=r"trusted_types=\['tests.security.test_packages.double'\]"):
        save_model(model, tmp_path / "f")
    save_model(model, tmp_path / "f", trusted_types=["tests.security.test_packages.double"])
    # the package lists the type, but only the one who loads it decides
    with pytest.raises(UnsafeModelError, match=r"load with trusted_types=\['tests.security.test_packages.double'\]"):
        load_package(tmp_path / "f")
    loaded = load_package(tmp_path / "f", trusted_types=["tests.security.test_packages.double"])
    assert loaded.predict(pd.DataFrame({"x": [5.0]})).round(6).tolist() == [10.0]


def double(x):
    return x * 2


# --- skops files whose schema calls code: the loader decides, never the file -----------------------------


@pytest.fixture
def canary(tmp_path: Path):
    marker = tmp_path / "canary"
    modules = tmp_path / "modules"
    modules.mkdir()
    hostile.canary_module(modules, marker)
    script = tmp_path / "script.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    yield marker, script
    import sys

    sys.path[:] = [p for p in sys.path if p != str(modules)]
    sys.modules.pop(hostile.CANARY_MODULE, None)


def _payload_names() -> list[str]:
    return list(hostile.payloads(Path("/x"), Path("/y")))


@pytest.mark.parametrize("payload", _payload_names())
@pytest.mark.parametrize("trust", [False, True])
def test_a_schema_that_calls_code_is_refused_by_name_before_anything_is_built(tmp_path: Path, canary, payload: str, trust: bool) -> None:
    marker, script = canary
    node = hostile.payloads(marker, script)[payload]
    folder = hostile.hostile_package(tmp_path, node)  # the manifest even lists the type as trusted, and its hashes match
    name = hostile.named(node)
    with pytest.raises(UnsafeModelError, match=name.replace(".", r"\.")):
        load_package(folder, trust=trust)  # trust=True allows pickled PythonModels, never a type the loader refuses
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["cProfile.run", "profile.run", "timeit.timeit", "builtins.exec", "os.system", "subprocess.getoutput",
                                     "runpy.run_path", "importlib.import_module", "import by function reference", "import by object",
                                     "a dict key type that makes folders", "a dict key type that imports"])
def test_each_payload_is_live_when_skops_is_told_to_trust_it(tmp_path: Path, canary, payload: str) -> None:
    """The control: skops alone, told to trust the type the file names, runs the payload. So the refusals above are real."""
    import skops.io as sio

    marker, script = canary
    node = hostile.payloads(marker, script)[payload]
    folder = hostile.hostile_package(tmp_path, node)
    name = hostile.named(node)
    try:
        sio.load(folder / "model.skops", trusted=[*sio.get_untrusted_types(file=folder / "model.skops"), name])
    except Exception:
        pass  # some payloads raise once they have run
    assert marker.exists()


def test_a_registered_hostile_version_is_refused_by_load_model(tmp_path: Path, canary) -> None:
    """Registering records the attacker's own hash: the hash check passes, the loader still refuses."""
    from modelcycle.registry import Registry
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client

    marker, script = canary
    folder = hostile.hostile_package(tmp_path, hostile.payloads(marker, script)["cProfile.run"])
    client = Client(Settings.for_home(tmp_path / "home", capture=False))
    try:
        with client.start_run(experiment="x") as run:
            run.log_artifact(folder, "model")
        registry = Registry(client)
        version = registry.register_model(f"runs:/{run.id}/model", "churn")
        registry.set_alias("churn", "champion", version.version)
        with pytest.raises(UnsafeModelError, match=r"cProfile\.run"):
            registry.load_model("models:/churn@champion")
        with pytest.raises(UnsafeModelError, match=r"cProfile\.run"):
            registry.load_model("models:/churn@champion", trust=True)
    finally:
        client.close()
    assert not marker.exists()


def test_a_type_named_by_the_caller_loads(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = make_pipeline(FunctionTransformer(func=double), LinearRegression()).fit(X, [2.0, 4.0, 6.0])
    save_model(model, tmp_path / "f", trusted_types=["tests.security.test_packages.double"])
    with pytest.raises(UnsafeModelError, match="does not load without your say-so"):
        load_package(tmp_path / "f", trust=True)
    assert load_package(tmp_path / "f", trusted_types=["tests.security.test_packages.double"]).predict(X).round(6).tolist() == [2.0, 4.0, 6.0]


def test_denied_types_cannot_be_trusted_even_by_name(tmp_path: Path) -> None:
    folder, _ = sklearn_package(tmp_path)
    with pytest.raises(UnsafeModelError, match="does not load them even when trusted"):
        load_package(folder, trusted_types=["os.system"])


# --- manifests that point outside the package ------------------------------------------------------------

@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.skops", "model.skops/../../outside.skops", "missing.skops"])
def test_the_manifest_cannot_name_a_model_file_it_does_not_verify(tmp_path: Path, path: str) -> None:
    folder, _ = sklearn_package(tmp_path)
    (tmp_path / "outside.skops").write_bytes((folder / "model.skops").read_bytes())
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["flavour_meta"]["file"] = path
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="not one of the package's verified files"):
        load_package(folder)


def test_python_model_artifacts_must_be_files_of_the_package(tmp_path: Path) -> None:
    from modelcycle.models import PythonModel

    class Echo(PythonModel):
        def predict(self, model_input):
            return model_input

    save_model(Echo(), tmp_path / "py", allow_pickle=True)
    manifest = json.loads((tmp_path / "py" / MANIFEST).read_text())
    manifest["flavour_meta"]["artifacts"] = {"vocab": "../../etc"}
    (tmp_path / "py" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="not in the package"):
        load_package(tmp_path / "py", trust=True)


# --- PyTorch: the class named in the manifest is not imported unless trusted ----------------------------

def _torch_package(tmp_path: Path, cls: str) -> Path:
    from safetensors.numpy import save_file

    folder = tmp_path / "torch"
    folder.mkdir()
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "weights.safetensors"))
    manifest = {"format": 1, "flavour": "pytorch", "model_class": cls.replace(":", "."),
                "flavour_meta": {"file": "weights.safetensors", "class": cls, "init_kwargs": {}},
                "files": {"weights.safetensors": {"sha256": sha256_file(folder / "weights.safetensors"),
                                                  "size": (folder / "weights.safetensors").stat().st_size}}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_pytorch_class_from_an_unknown_module_is_not_imported(tmp_path: Path, canary) -> None:
    marker, _ = canary
    folder = _torch_package(tmp_path, f"{hostile.CANARY_MODULE}:Net")
    with pytest.raises(UnsafeModelError, match=rf"importing {hostile.CANARY_MODULE} runs its code.*trusted_types=\['{hostile.CANARY_MODULE}\.Net'\]"):
        load_package(folder)
    assert not marker.exists()


@pytest.mark.parametrize("cls", ["os:system", "torch", ":Net", "a b:C", "mod:Net;import os"])
def test_pytorch_class_names_that_are_not_classes_are_refused(tmp_path: Path, cls: str) -> None:
    with pytest.raises(UnsafeModelError):
        load_package(_torch_package(tmp_path, cls), trust=False)


# --- anything that is not a model is refused ---------------------------------------------------------------

@pytest.mark.parametrize("value", [{"coef": [1, 2]}, 3.5, [1, 2, 3], "model"])
def test_a_skops_file_holding_no_model_is_refused(tmp_path: Path, value) -> None:
    import skops.io as sio

    folder, _ = sklearn_package(tmp_path)
    sio.dump(value, folder / "model.skops")
    rehash(folder)
    with pytest.raises(UnsafeModelError, match=r"has no predict\(\)"):
        load_package(folder)


def test_a_tree_whose_nodes_point_outside_it_is_refused(tmp_path: Path) -> None:
    """A crafted node array would make scikit-learn read outside its memory on the first prediction."""
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    model = DecisionTreeClassifier(max_depth=3).fit(X, (X["a"] > 0.5).astype(int))
    save_model(model, tmp_path / "tree")
    nodes = model.tree_.__getstate__()
    nodes["nodes"]["left_child"][0] = 10_000_000
    model.tree_.__setstate__(nodes)
    sio.dump(model, tmp_path / "tree" / "model.skops")
    rehash(tmp_path / "tree")
    with pytest.raises(UnsafeModelError, match="Tree that cannot be served safely"):
        load_package(tmp_path / "tree")


def test_a_hist_gradient_boosting_predictor_pointing_outside_its_features_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = pd.DataFrame({"a": np.linspace(0, 1, 80), "b": np.linspace(1, 0, 80)})
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, (X["a"] > 0.5).astype(int))
    save_model(model, tmp_path / "hgb")
    nodes = model._predictors[0][0].nodes
    nodes["feature_idx"][~nodes["is_leaf"].astype(bool)] = 1_000
    sio.dump(model, tmp_path / "hgb" / "model.skops")
    rehash(tmp_path / "hgb")
    with pytest.raises(UnsafeModelError, match="TreePredictor that cannot be served safely"):
        load_package(tmp_path / "hgb")


# --- compression bombs ---------------------------------------------------------------------------------------

def test_a_zip_bomb_posing_as_skops_is_not_decompressed(tmp_path: Path) -> None:
    folder, _ = sklearn_package(tmp_path)
    (folder / "model.skops").write_bytes(hostile.deflate_bomb(2 << 30))
    rehash(folder)
    with pytest.raises(UnsafeModelError, match="refusing to decompress"):
        load_package(folder)


@pytest.mark.parametrize("name", ["profile.bin", "predictions.bin"])
def test_profile_bombs_stop_at_the_bound(tmp_path: Path, name: str) -> None:
    """1 MB of zlib that would inflate to 1 GB: refused after at most the bound, memory stays small."""
    import resource
    import zlib

    from modelcycle.errors import InvalidInputError

    folder, _ = hostile.logistic(tmp_path)
    (folder / name).write_bytes(zlib.compress(b" " * (1 << 30), 9))
    assert (folder / name).stat().st_size < 2 << 20
    rehash(folder)
    loaded = load_package(folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidInputError, match="expands to more than"):
        loaded.profile if name == "profile.bin" else loaded.prediction_profile  # noqa: B018
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 600, f"reading the bomb grew the process by {grown_mb:.0f} MB"


# --- pipelines: a cache row never grants trust --------------------------------------------------------------

def test_a_step_returning_a_pickled_model_must_declare_it(tmp_path: Path) -> None:
    import modelcycle as mc
    from modelcycle.errors import PipelineError
    from modelcycle.models import PythonModel
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client
    from modelcycle.tracking.fluent import set_client

    class Doubler(PythonModel):
        def predict(self, model_input):
            return model_input * 2

    @mc.step
    def undeclared() -> Doubler:
        return Doubler()

    @mc.step(allow_pickle=True)
    def declared() -> Doubler:
        return Doubler()

    @mc.step
    def use(model: Doubler) -> list:
        return model.predict(pd.Series([1, 2])).tolist()

    @mc.pipeline
    def bad() -> list:
        return use(undeclared())

    @mc.pipeline
    def good() -> list:
        return use(declared())

    client = Client(Settings.for_home(tmp_path / "home", capture=False))
    set_client(client)
    try:
        with pytest.raises(PipelineError, match=r"allow_pickle=True"):
            bad.run()
        assert good.run().output == [2, 4]
    finally:
        set_client(None)
        client.close()


def test_a_cache_row_pointing_at_a_pickled_package_is_not_loaded(tmp_path: Path) -> None:
    """Someone who can write the store swaps a cached model output for a pickle: the step never declared pickle, so it is refused."""
    import sqlalchemy as sa

    import modelcycle as mc
    from modelcycle.models import PythonModel
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client
    from modelcycle.tracking.fluent import set_client

    @mc.step
    def train() -> object:
        from sklearn.linear_model import LogisticRegression

        X = pd.DataFrame({"a": np.linspace(0, 1, 40)})
        return LogisticRegression().fit(X, (X["a"] > 0.5).astype(int))

    @mc.pipeline
    def fit() -> object:
        return train()

    class Echo(PythonModel):
        def predict(self, model_input):
            return model_input

    marker = tmp_path / "pwned"
    client = Client(Settings.for_home(tmp_path / "home", capture=False))
    set_client(client)
    try:
        fit.run()
        save_model(Echo(), tmp_path / "evil", allow_pickle=True)
        (tmp_path / "evil" / "python_model.pkl").write_bytes(payloads(marker)["pickle"])
        rehash(tmp_path / "evil")
        files = {p.name: client.artifact_store.put_file(p)[0] for p in (tmp_path / "evil").iterdir()}
        engine = sa.create_engine(client.settings.store_uri)
        with engine.begin() as conn:
            row = conn.execute(sa.text("select key, output from step_cache where step = 'train'")).one()
            output = json.loads(row.output)
            output["files"] = files
            conn.execute(sa.text("update step_cache set output = :o where key = :k"), {"o": json.dumps(output), "k": row.key})
        engine.dispose()
        result = fit.run()  # the tampered row is a cache hit
        assert result.steps["train"].cached
        with pytest.raises(UnsafeModelError, match="trust=True"):
            result.outputs["train"]
    finally:
        set_client(None)
        client.close()
    assert not marker.exists()


def test_the_settings_trusted_types_apply_to_saving_and_loading(tmp_path: Path) -> None:
    """MODELCYCLE_TRUSTED_TYPES: what a process may load, it may also log (the agent and `modelcycle ci` log candidates)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from modelcycle.registry import Registry
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client

    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = make_pipeline(FunctionTransformer(func=double), LinearRegression()).fit(X, [2.0, 4.0, 6.0])
    settings = Settings.from_env({"MODELCYCLE_HOME": str(tmp_path / "home"), "MODELCYCLE_CAPTURE": "0",
                                  "MODELCYCLE_TRUSTED_TYPES": "tests.security.test_packages.double, numpy.memmap_like"})
    client = Client(settings)
    try:
        with client.start_run(experiment="x"):
            logged = client.log_model(model, reference_data=X)
        assert Registry(client).load_model(logged.uri).predict(X).round(6).tolist() == [2.0, 4.0, 6.0]
    finally:
        client.close()
    plain = Client(Settings.for_home(tmp_path / "home", capture=False))
    try:
        with pytest.raises(UnsafeModelError, match="MODELCYCLE_TRUSTED_TYPES"):
            Registry(plain).load_model(logged.uri)
    finally:
        plain.close()


@pytest.mark.parametrize("func", ["sklearn.utils.validation.check_memory", "sklearn.tree._export.export_graphviz",
                                  "sklearn.utils._set_output.check_library_installed", "sklearn.datasets._svmlight_format_io.dump_svmlight_file",
                                  "numpy.save", "numpy.savetxt", "numpy.load"])
def test_functions_a_model_calls_when_it_predicts_must_be_pure(tmp_path: Path, func: str) -> None:
    """A FunctionTransformer (or a score function, a callable metric …) calls what it refers to on every prediction,
    with arguments the file can bind: a function that writes, reads or imports is refused, referenced or not."""
    import importlib

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    module, _, attr = func.rpartition(".")
    target = getattr(importlib.import_module(module), attr)
    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    model = make_pipeline(FunctionTransformer(func=np.log1p), LogisticRegression()).fit(X, (X["a"] > 0.5).astype(int))
    model.steps[0][1].func = target
    with pytest.raises(UnsafeModelError, match=func.replace(".", r"\.")):
        save_model(model, tmp_path / "f")
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("source", ["filename", "file"])
def test_a_text_vectorizer_that_reads_files_is_refused(tmp_path: Path, source: str) -> None:
    """With input='filename', a served CountVectorizer opens whatever path a request sends (/etc/passwd, /dev/zero)."""
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    docs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    docs[0].write_text("root admin")
    docs[1].write_text("guest user")
    X = pd.DataFrame({"doc": [str(d) for d in docs] * 10})
    y = [1, 0] * 10
    for vectorizer in (CountVectorizer(input="filename"), TfidfVectorizer(input="filename")):
        model = make_pipeline(make_column_transformer((vectorizer, "doc")), LogisticRegression()).fit(X, y)

        def reads(value: str, model=model) -> None:
            for v in (model.steps[0][1].transformers[0][1], model.steps[0][1].transformers_[0][1]):
                v.input = value

        reads(source)
        folder = tmp_path / f"{type(vectorizer).__name__}-{source}"
        with pytest.raises(UnsafeModelError, match=f"input='{source}'"):
            save_model(model, folder)  # refused when saved, by the rule that refuses it when loaded
        reads("content")
        save_model(model, folder)
        skops_file = folder / "model.skops"
        import skops.io as sio

        reads(source)  # the file rewritten by someone else
        sio.dump(model, skops_file)
        rehash(folder)
        with pytest.raises(UnsafeModelError, match=f"input='{source}'"):
            load_package(folder)


def test_a_pipeline_step_may_return_a_fitted_transformer(tmp_path: Path) -> None:
    """Stored step outputs need not predict (a scaler is an output too); they are still checked like models."""
    import modelcycle as mc
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client
    from modelcycle.tracking.fluent import set_client

    @mc.step
    def scaler() -> object:
        from sklearn.preprocessing import StandardScaler

        return StandardScaler().fit(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))

    @mc.pipeline
    def prepare() -> object:
        return scaler()

    client = Client(Settings.for_home(tmp_path / "home", capture=False))
    set_client(client)
    try:
        result = prepare.run()
        assert result.outputs["scaler"].mean_.tolist() == [2.0]
    finally:
        set_client(None)
        client.close()


def test_a_lambda_is_refused_when_saved_with_the_way_out(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = make_pipeline(FunctionTransformer(func=lambda a: a * 2), LinearRegression()).fit(X, [2.0, 4.0, 6.0])
    for trusted in (None, ["tests.security.test_packages.<lambda>"]):
        with pytest.raises(UnsafeModelError, match="cannot be imported again when the model is loaded; define it at the top level"):
            save_model(model, tmp_path / "lam", trusted_types=trusted)


def test_a_trusted_type_that_cannot_be_imported_says_how_to_make_it_importable(tmp_path: Path) -> None:
    """Trusted, but defined in a module this process cannot import (a user's package, not installed or not on the path)."""
    import sys

    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    (tmp_path / "mc_userlib.py").write_text("def triple(x):\n    return x * 3\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import mc_userlib

        X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
        model = make_pipeline(FunctionTransformer(func=mc_userlib.triple), LinearRegression()).fit(X, [3.0, 6.0, 9.0])
        save_model(model, tmp_path / "user", trusted_types="mc_userlib.triple")  # one name is enough, not a list of characters
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mc_userlib", None)
    with pytest.raises(ModelError, match=r"needs module 'mc_userlib', which cannot be imported here.*PYTHONPATH"):
        load_package(tmp_path / "user", trusted_types=["mc_userlib.triple"])
    with pytest.raises(UnsafeModelError, match=r"--trusted-type mc_userlib\.triple"):
        load_package(tmp_path / "user")


@pytest.mark.parametrize("names", [["mylib"], ["my lib.X"], ["mylib.*"], [""]])
def test_trusted_types_must_be_names(tmp_path: Path, names: list[str]) -> None:
    from modelcycle.errors import InvalidInputError

    folder, _ = sklearn_package(tmp_path)
    if names == [""]:
        load_package(folder, trusted_types=names)  # empty entries are ignored
        return
    with pytest.raises(InvalidInputError, match="trusted types are names like"):
        load_package(folder, trusted_types=names)


def test_a_pickled_model_whose_code_is_not_importable_is_one_clear_error(tmp_path: Path) -> None:
    import sys

    from modelcycle.models import PythonModel

    (tmp_path / "mc_pymodels.py").write_text(
        "from modelcycle.models import PythonModel\n\nclass Echo(PythonModel):\n    def predict(self, model_input):\n        return model_input\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import mc_pymodels

        assert issubclass(mc_pymodels.Echo, PythonModel)
        save_model(mc_pymodels.Echo(), tmp_path / "py", allow_pickle=True)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mc_pymodels", None)
    with pytest.raises(ModelError, match=r"needs module 'mc_pymodels', which cannot be imported here"):
        load_package(tmp_path / "py", trust=True)


@pytest.mark.parametrize("case", ["unfitted", "target in the reference data", "renamed columns"])
def test_a_model_that_cannot_predict_on_its_own_data_is_refused_when_logged(tmp_path: Path, case: str) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from modelcycle.errors import InvalidInputError

    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    y = (X["a"] > 0.5).astype(int)
    model = RandomForestClassifier(n_estimators=3) if case == "unfitted" else RandomForestClassifier(n_estimators=3).fit(X, y)
    reference = {"unfitted": X, "target in the reference data": X.assign(target=y), "renamed columns": X.rename(columns=str.upper)}[case]
    with pytest.raises(InvalidInputError, match="cannot predict on its reference_data"):
        save_model(model, tmp_path / "m", reference_data=reference)
    assert not (tmp_path / "m").exists()


def test_a_prediction_log_bomb_is_refused_by_its_footer(tmp_path: Path) -> None:
    """A Parquet file whose run-length pages promise 100 million rows from a few KB: read_log and
    monitoring windows refuse it by name before reading a page; memory stays small."""
    import resource

    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelcycle.errors import InvalidInputError
    from modelcycle.monitoring.windows import read_window
    from modelcycle.store.predictions import list_files, read_log

    folder = tmp_path / "predictions" / "model=churn" / "date=2026-01-01"
    folder.mkdir(parents=True)
    chunk = pa.table({"request_id": pa.array(["x"] * 5_000_000), "time": pa.array([0] * 5_000_000, pa.timestamp("us", "UTC"))})
    bomb = folder / "part-1767225600000000000-bomb.parquet"
    with pq.ParquetWriter(bomb, chunk.schema, compression="zstd") as writer:
        for _ in range(20):
            writer.write_table(chunk, row_group_size=5_000_000)
    assert bomb.stat().st_size < 8 << 20  # 100 million rows (1.6 GB as arrays) in a few MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidInputError, match=r"part-1767225600000000000-bomb\.parquet promises 100,000,000 rows"):
        read_log(tmp_path, "churn")
    with pytest.raises(InvalidInputError, match="Move it out of the log folder"):
        read_window(tmp_path, list_files(tmp_path, "predictions", "churn"), 0, 2e9)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"reading the bomb grew the process by {grown_mb:.0f} MB"


@pytest.mark.parametrize("column", ["request_id", "input.city", "role"])
def test_a_dictionary_bomb_in_the_log_is_refused_before_it_is_expanded(tmp_path: Path, column: str) -> None:
    """A file whose dictionary holds one long value that every row points at passes every footer check (its
    size, rows and page sizes are honest) and expands 5,000 times when read as text: each reader counts the
    text a dictionary stands for and refuses the file by name before expanding it."""
    import random
    import resource
    import string

    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelcycle.errors import InvalidInputError
    from modelcycle.monitoring.windows import read_window
    from modelcycle.store.predictions import append_labels, check_file, list_files, read_log

    folder = tmp_path / "predictions" / "model=churn" / "date=2026-01-01"
    folder.mkdir(parents=True)
    rows, long = 5_000, "".join(random.choices(string.ascii_letters, k=100_000))  # incompressible: the file is ~100 KB
    values = {"request_id": [f"r{i}" for i in range(rows)], "input.city": ["paris"] * rows, "role": ["champion"] * rows}
    values[column] = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([long]))
    table = pa.table({**values, "time": pa.array([1767225600_000_000] * rows, pa.timestamp("us", "UTC")),
                      "version": [1] * rows, "prediction": [0.5] * rows})
    bomb = folder / "part-1767225600000000000-bomb_1.parquet"
    pq.write_table(table, bomb, compression="none", store_schema=False)
    check_file(bomb)  # the footer is honest: 5,000 rows and ~100 KB of pages in a ~100 KB file
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    expands = r"part-1767225600000000000-bomb_1\.parquet\) would expand to 5\d\d,\d{3},\d{3} bytes"
    with pytest.raises(InvalidInputError, match=expands):
        read_log(tmp_path, "churn")
    with pytest.raises(InvalidInputError, match=expands):
        read_window(tmp_path, list_files(tmp_path, "predictions", "churn"), 0, 2e9)
    if column == "request_id":  # looked up through the dictionary: no row is that id, and nothing was expanded
        with pytest.raises(InvalidInputError, match="not in the prediction log"):
            append_labels(tmp_path, "churn", ["r1"], [1])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"reading the bomb grew the process by {grown_mb:.0f} MB"
