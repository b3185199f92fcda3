"""Model packages: every flavour round-trips with the same predictions, signature and profile, and no pickle."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import InvalidInputError, ModelcycleWarning, ModelError, SignatureError, UnsafeModelError
from modelcycle.models import PythonModel, Signature, load_package, save_model, verify_package
from modelcycle.models.package import MANIFEST, PROFILE


def frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50_000, 12_000, n),
        "region": rng.choice(["north", "south", "east"], n),
    })
    y = pd.Series(((X["income"] > 50_000) ^ (X["region"] == "east")).astype(int), name="y")
    return X, y


def sklearn_pipeline(X: pd.DataFrame, y: pd.Series):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    return make_pipeline(pre, LogisticRegression(max_iter=500)).fit(X, y)


def test_sklearn_pipeline_round_trip(tmp_path: Path) -> None:
    X, y = frame()
    model = sklearn_pipeline(X, y)
    manifest = save_model(model, tmp_path / "pkg", reference_data=X, input_example=X.head(3))
    assert manifest.flavour == "sklearn"
    assert set(manifest.files) == {"model.skops", PROFILE, "predictions.bin", "input_example.json", "requirements.txt"}
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in manifest.files)
    assert [(c.name, c.type) for c in manifest.signature.inputs] == [("age", "long"), ("income", "double"), ("region", "string")]
    loaded = load_package(tmp_path / "pkg")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.profile.rows == len(X) and loaded.profile.columns["region"].distinct == 3
    assert loaded.input_example.shape == (3, 3)
    predicted = loaded.prediction_profile  # the model's own predictions on its reference data, for prediction drift
    assert predicted.rows == len(X) and set(predicted.columns) == {"prediction", "proba.0", "proba.1"}
    assert predicted.columns["proba.1"].mean == pytest.approx(model.predict_proba(X)[:, 1].mean())
    assert "scikit-learn" in manifest.requirements and "skops" in manifest.requirements
    assert "scikit-learn==" in (tmp_path / "pkg" / "requirements.txt").read_text()


def test_types_beyond_the_defaults_are_recorded_and_loaded(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = frame()
    X = X[["age", "income"]]
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    manifest = save_model(model, tmp_path / "hgb", input_example=X[["age", "income"]].head())
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in manifest.flavour_meta["trusted_types"]
    np.testing.assert_allclose(load_package(tmp_path / "hgb").predict_proba(X), model.predict_proba(X[["age", "income"]]))


@pytest.mark.parametrize("kind", ["XGBClassifier", "XGBRegressor", "Booster"])
def test_xgboost_native_format(tmp_path: Path, kind: str) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = frame()
    Xn = X[["age", "income"]]
    if kind == "Booster":
        model = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(Xn, label=y), num_boost_round=5)
        expected = model.predict(xgb.DMatrix(Xn))
    else:
        model = getattr(xgb, kind)(n_estimators=5).fit(Xn, y)
        expected = model.predict(Xn)
    manifest = save_model(model, tmp_path / "m", input_example=Xn.head())
    assert manifest.flavour == "xgboost" and "model.json" in manifest.files
    loaded = load_package(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(Xn), expected, rtol=1e-6)
    assert hasattr(loaded, "predict_proba") == (kind == "XGBClassifier")


@pytest.mark.parametrize("kind", ["LGBMClassifier", "LGBMRegressor"])
def test_lightgbm_native_format(tmp_path: Path, kind: str) -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y = frame()
    Xn = X[["age", "income"]]
    model = getattr(lgb, kind)(n_estimators=10, verbose=-1).fit(Xn, y)
    manifest = save_model(model, tmp_path / "m", input_example=Xn.head())
    assert manifest.flavour == "lightgbm" and "model.txt" in manifest.files
    loaded = load_package(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(Xn), model.predict(Xn), rtol=1e-6)
    if kind == "LGBMClassifier":
        np.testing.assert_allclose(loaded.predict_proba(Xn), model.predict_proba(Xn), rtol=1e-6)
    else:
        assert not hasattr(loaded, "predict_proba")


class Threshold(PythonModel):
    """Predicts 1 above a cut read from an artifact file."""

    def load_context(self, context) -> None:
        self.cut = float(Path(context.artifacts["cut"]).read_text())

    def predict(self, model_input):
        return (model_input["income"] > self.cut).astype(int).to_numpy()


def test_python_model_needs_consent_to_save_and_to_load(tmp_path: Path) -> None:
    X, _ = frame()
    (tmp_path / "cut.txt").write_text("60000")
    with pytest.raises(UnsafeModelError, match="allow_pickle=True"):
        save_model(Threshold(), tmp_path / "refused", artifacts={"cut": tmp_path / "cut.txt"})
    assert not (tmp_path / "refused").exists()
    save_model(Threshold(), tmp_path / "py", allow_pickle=True, artifacts={"cut": tmp_path / "cut.txt"}, input_example=X.head())
    with pytest.raises(UnsafeModelError, match="trust=True"):
        load_package(tmp_path / "py")
    loaded = load_package(tmp_path / "py", trust=True)
    np.testing.assert_array_equal(loaded.predict(X), (X["income"] > 60000).astype(int).to_numpy())


class MLflowThreshold(PythonModel):
    """The same model as MLflow users write it: the context comes first, and params may follow."""

    def predict(self, context, model_input, params=None):
        cut = float(Path(context.artifacts["cut"]).read_text()) + (params or {}).get("shift", 0.0)
        return (model_input["income"] > cut).astype(int).to_numpy()


class NoInput(PythonModel):
    def predict(self):
        return 1


class ThreeInputs(PythonModel):
    def predict(self, context, model_input, params):
        return model_input


def test_python_model_in_mlflow_form(tmp_path: Path) -> None:
    """predict(self, context, model_input, params=None) works as written for MLflow; the context carries the artifacts."""
    X, _ = frame()
    (tmp_path / "cut.txt").write_text("60000")
    manifest = save_model(MLflowThreshold(), tmp_path / "py", allow_pickle=True, artifacts={"cut": tmp_path / "cut.txt"}, reference_data=X)
    assert manifest.flavour == "python"
    loaded = load_package(tmp_path / "py", trust=True)
    np.testing.assert_array_equal(loaded.predict(X), (X["income"] > 60000).astype(int).to_numpy())
    assert isinstance(loaded.raw, MLflowThreshold), "raw stays the user's object"


@pytest.mark.parametrize(("model", "shown"), [(NoInput(), "NoInput.predict(self)"),
                                              (ThreeInputs(), "ThreeInputs.predict(self, context, model_input, params)"),
                                              (PythonModel(), "PythonModel does not define predict")])
def test_a_python_model_of_another_form_is_refused_at_save(tmp_path: Path, model: PythonModel, shown: str) -> None:
    import modelcycle as mc
    from modelcycle.settings import Settings

    with pytest.raises(ModelError, match=re.escape(shown)) as err:
        save_model(model, tmp_path / "py", allow_pickle=True)
    assert "predict(self, context, model_input, params=None)" in str(err.value)
    assert not (tmp_path / "py").exists()
    client = mc.Client(Settings.for_home(tmp_path / "home", capture=False))
    try:
        with client.start_run(experiment="forms"), pytest.raises(ModelError, match=re.escape(shown)):
            client.log_model(model, allow_pickle=True)
    finally:
        client.close()


def test_unknown_model_types_get_advice(tmp_path: Path) -> None:
    class Custom:
        def predict(self, X):
            return X

    with pytest.raises(InvalidInputError, match="PythonModel"):
        save_model(Custom(), tmp_path / "x")


def test_a_package_is_never_written_over(tmp_path: Path) -> None:
    X, y = frame()
    model = sklearn_pipeline(X, y)
    save_model(model, tmp_path / "pkg")
    before = (tmp_path / "pkg" / MANIFEST).read_bytes()
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        save_model(model, tmp_path / "pkg")
    assert (tmp_path / "pkg" / MANIFEST).read_bytes() == before
    assert verify_package(tmp_path / "pkg").hash


def test_signature_errors_name_every_column(tmp_path: Path) -> None:
    X, y = frame()
    save_model(sklearn_pipeline(X, y), tmp_path / "pkg", reference_data=X)
    loaded = load_package(tmp_path / "pkg")
    bad = X.drop(columns=["age"]).assign(income=X["income"].astype(str).str.replace("1", "x"))
    with pytest.raises(SignatureError) as err:
        loaded.predict(bad)
    message = str(err.value)
    assert "missing columns: age" in message and "income (expected double, got string)" in message
    assert {p["column"] for p in err.value.problems} == {"age", "income"}
    with pytest.warns(ModelcycleWarning, match="dropped: customer_id"):
        out = loaded.predict(X.assign(customer_id=range(len(X))))
    assert len(out) == len(X)
    with pytest.raises(SignatureError, match="non-nullable columns: income \\(1 rows\\)"):
        loaded.predict(X.assign(income=[None, *X["income"].iloc[1:]]))
    with pytest.raises(SignatureError, match="empty"):
        loaded.predict(X.iloc[:0])


@pytest.mark.parametrize("value", [np.inf, -np.inf, "inf"])
def test_infinite_numbers_are_a_signature_error(tmp_path: Path, value) -> None:
    """scikit-learn would answer its own ValueError; predict names the column, as the server does."""
    X, y = frame()
    save_model(sklearn_pipeline(X, y), tmp_path / "pkg", reference_data=X)
    loaded = load_package(tmp_path / "pkg")
    bad = X.head(3).astype({"income": object if isinstance(value, str) else float})
    bad.loc[1, "income"] = value
    with pytest.raises(SignatureError, match=r"infinite values in income \(1 rows\)") as err:
        loaded.predict(bad)
    assert err.value.problems == [{"column": "income", "problem": "infinite", "expected": "double", "observed": "infinity", "rows": 1}]
    sig = Signature.from_dict({"inputs": [{"name": "n", "type": "long"}]})
    with pytest.raises(SignatureError, match=r"infinite values in n \(1 rows\)"):
        sig.check(pd.DataFrame({"n": [1.0, value]}))


def test_signature_accepts_what_a_user_would_send() -> None:
    sig = Signature.from_dict({"inputs": [{"name": "n", "type": "long"}, {"name": "x", "type": "double"},
                                          {"name": "ok", "type": "boolean"}, {"name": "when", "type": "datetime", "nullable": True}]})
    out = sig.check(pd.DataFrame({"x": [1, 2], "n": [3.0, 4.0], "ok": [True, False], "when": ["2026-01-01", None]}))
    assert out.columns.tolist() == ["n", "x", "ok", "when"]
    assert out["n"].dtype == np.int64 and out["x"].dtype == np.float64
    with pytest.raises(SignatureError, match=r"n \(expected long, got double\)"):
        sig.check(pd.DataFrame({"x": [1.0], "n": [1.5], "ok": [True], "when": [None]}))
    with pytest.raises(SignatureError, match=r"ok \(expected boolean, got long\)"):
        sig.check(pd.DataFrame({"x": [1.0], "n": [1], "ok": [1], "when": [None]}))


def test_manifest_is_plain_json_with_every_hash(tmp_path: Path) -> None:
    X, y = frame()
    manifest = save_model(sklearn_pipeline(X, y), tmp_path / "pkg", input_example=X.head())
    raw = json.loads((tmp_path / "pkg" / MANIFEST).read_text())
    assert raw["format"] == 1 and raw["flavour"] == "sklearn"
    assert set(raw["files"]) == set(manifest.files)
    assert all(len(entry["sha256"]) == 64 for entry in raw["files"].values())


def test_pytorch_weights_through_safetensors(tmp_path: Path) -> None:
    """A module of the user's (outside torch) round-trips through safetensors; skipped where PyTorch is not installed
    (CI installs the CPU build, `.ci/run`)."""
    torch = pytest.importorskip("torch")
    from tests.models.torch_net import TinyNet

    torch.manual_seed(0)
    net = TinyNet(n_in=2)
    X = pd.DataFrame({"a": [0.1, 0.5, 0.9], "b": [1.0, 0.0, 0.5]})
    manifest = save_model(net, tmp_path / "net", reference_data=X, init_kwargs={"n_in": 2})
    assert manifest.flavour == "pytorch" and "weights.safetensors" in manifest.files
    assert not any(name.endswith((".pkl", ".pt", ".pth")) for name in manifest.files)
    assert [c.name for c in manifest.signature.inputs] == ["a", "b"] and manifest.has_prediction_profile
    assert net.training, "saving leaves the module in the mode it was in"
    with pytest.raises(UnsafeModelError, match="trusted_types"):
        load_package(tmp_path / "net")  # importing the class's module runs its code: only when named
    loaded = load_package(tmp_path / "net", trusted_types=["tests.models.torch_net.TinyNet"])
    with torch.no_grad():
        expected = net(torch.tensor(X.to_numpy(), dtype=torch.float32)).numpy()
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-6)
    with pytest.raises(SignatureError, match="missing columns: b"):
        loaded.predict(X[["a"]])


class MLflowDefaults(PythonModel):
    def predict(self, context, model_input=None, params=None):
        return model_input["income"] * 2


def test_mlflows_form_with_defaults_is_still_mlflows_form(tmp_path: Path) -> None:
    X, _ = frame()
    save_model(MLflowDefaults(), tmp_path / "m", reference_data=X, allow_pickle=True)
    np.testing.assert_array_equal(load_package(tmp_path / "m", trust=True).predict(X), (X["income"] * 2).to_numpy())
