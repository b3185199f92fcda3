"""scikit-learn autologging: one run per outermost fit, with params, training metrics and data fingerprint."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest

import modelcycle as mc
from modelcycle.errors import ModelcycleWarning
from modelcycle.tracking.client import Client

sklearn = pytest.importorskip("sklearn")
pytestmark = pytest.mark.filterwarnings("error::modelcycle.errors.ModelcycleWarning")  # autolog recorded all


@pytest.fixture
def autologged(client: Client):
    mc.set_client(client)
    mc.autolog()
    yield client
    mc.autolog(disable=True)
    mc.set_client(None)


def test_fit_outside_a_run_gets_its_own_finished_run(autologged: Client) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    LogisticRegression(C=0.5, max_iter=500).fit(X, y)
    runs = autologged.search_runs(as_frame=False)
    assert len(runs) == 1
    run = autologged.get_run(runs[0].id)
    assert run.status.value == "FINISHED"
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "500"
    assert 0.9 < run.metrics["training_accuracy"] <= 1.0
    assert {"training_f1", "training_log_loss", "training_roc_auc", "fit_seconds"} <= set(run.metrics)
    assert run.tags["estimator_class"] == "LogisticRegression"
    summary = json.loads(autologged.read_artifact(run.id, "model_summary.json"))
    assert summary["n_features_in_"] == 4 and summary["classes_"] == [0, 1, 2]
    assert run.inputs[0].role == "train" and run.inputs[0].rows == 150


def test_pipeline_inside_a_run_logs_once_to_that_run(autologged: Client) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    with mc.start_run(name="mine") as run:
        make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(X, y)
    assert len(autologged.search_runs(as_frame=False)) == 1, "nested fits do not start runs"
    got = autologged.get_run(run.id)
    assert got.params["ridge.alpha"] == "2.0"
    assert {"training_r2", "training_rmse", "training_mae"} <= set(got.metrics)


def test_failing_fit_ends_its_run_failed_and_raises(autologged: Client) -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ValueError):
        LogisticRegression().fit([[1.0], [2.0]], [0, 0])  # a single class
    run = autologged.search_runs(as_frame=False)[0]
    assert run.status.value == "FAILED"


def test_disable_restores_plain_fit(autologged: Client) -> None:
    from sklearn.linear_model import LinearRegression

    mc.autolog(disable=True)
    LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0])
    assert autologged.search_runs(as_frame=False) == []


def test_an_estimator_that_inherits_fit_is_logged_inside_a_run(autologged: Client) -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    assert "fit" not in vars(RandomForestClassifier)  # it is BaseForest's
    X, y = load_iris(return_X_y=True)
    with mc.start_run(name="forest") as run:
        RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    got = autologged.get_run(run.id)
    assert got.params["n_estimators"] == "5" and got.params["max_depth"] == "3"
    assert got.metrics["training_accuracy"] > 0.9 and "training_roc_auc" in got.metrics
    assert got.tags["estimator_class"] == "RandomForestClassifier"
    assert len(autologged.search_runs(as_frame=False)) == 1


def test_a_fit_calling_a_patched_super_fit_is_logged_once(autologged: Client) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier, _MultiOutputEstimator

    assert "fit" in vars(MultiOutputClassifier) and "fit" in vars(_MultiOutputEstimator)  # the first calls the second
    d = _sweep_data()
    MultiOutputClassifier(LogisticRegression(C=0.3)).fit(d["X"], d["Y_class"])
    runs = autologged.search_runs(as_frame=False)
    assert [r.name for r in runs] == ["MultiOutputClassifier"]
    got = autologged.get_run(runs[0].id)
    assert got.params["estimator.C"] == "0.3" and "training_accuracy" in got.metrics
    assert got.inputs[0].rows == 40  # the two targets as two columns


def test_a_subclass_of_ours_is_logged_under_its_own_name(autologged: Client) -> None:
    from sklearn.ensemble import ExtraTreesRegressor

    class MyForest(ExtraTreesRegressor):  # defined after autolog patched; its fit is BaseForest's
        pass

    d = _sweep_data()
    MyForest(n_estimators=3).fit(d["X"], d["y_reg"])
    runs = autologged.search_runs(as_frame=False)
    assert [r.name for r in runs] == ["MyForest"] and runs[0].params["n_estimators"] == "3"
    assert runs[0].metrics["training_r2"] > 0.5


def test_disable_puts_back_exactly_what_was_there(client: Client) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classes = {k for _, cls in all_estimators() for k in cls.__mro__} | set(Pipeline.__mro__)
    before = {cls: vars(cls).get("fit") for cls in classes}
    mc.set_client(client)
    try:
        mc.autolog()
        mc.autolog(log_datasets=False)  # again: options change, nothing is wrapped twice
        patched = {cls for cls in classes if vars(cls).get("fit") is not before[cls]}
        assert {cls.__name__ for cls in patched} >= {"BaseForest", "BaseLibSVM", "BaseHistGradientBoosting", "Pipeline"}
        assert all(vars(cls)["fit"].__wrapped__ is before[cls] for cls in patched)
        mc.autolog(disable=True)
        assert {cls: vars(cls).get("fit") for cls in classes} == before
    finally:
        mc.autolog(disable=True)
        mc.set_client(None)


# --- every estimator scikit-learn lists --------------------------------------------------------------------------

def _sweep_data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 4.0, (40, 4))  # positive: count models (naive Bayes, NMF, LDA) and chi² samplers need it
    total = X[:, 0] + X[:, 1]
    y_reg = 1.0 + X @ np.array([1.0, 0.5, 0.2, 0.0]) + rng.normal(0, 0.1, 40)  # positive, for Gamma and Poisson
    return {"X": X, "y_class": (total > np.median(total)).astype(int), "y_reg": y_reg,
            "Y_class": np.c_[total > np.median(total), X[:, 2] > 2].astype(int), "Y_reg": np.c_[y_reg, y_reg**0.5]}


def _sweep_estimators() -> list[tuple[str, Any, tuple[Any, ...]]]:
    """Every estimator of ``all_estimators()``, built with what its constructor requires, and small inputs it accepts."""
    from sklearn.base import RegressorMixin
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils import all_estimators

    d = _sweep_data()
    X, y_class, y_reg, Y_class, Y_reg = d["X"], d["y_class"], d["y_reg"], d["Y_class"], d["Y_reg"]
    lr, ridge = LogisticRegression(), Ridge()
    required: dict[str, dict[str, Any]] = {  # constructor arguments without a default, and a few that keep it small
        **{name: {"estimator": lr} for name in ("ClassifierChain", "FixedThresholdClassifier", "MultiOutputClassifier",
                                               "OneVsOneClassifier", "OneVsRestClassifier", "OutputCodeClassifier", "RFE",
                                               "SelectFromModel", "SelfTrainingClassifier")},
        **{name: {"estimator": lr, "cv": 2} for name in ("RFECV", "SequentialFeatureSelector")},
        "TunedThresholdClassifierCV": {"estimator": lr, "cv": 2, "thresholds": 5},
        "MultiOutputRegressor": {"estimator": ridge},
        "RegressorChain": {"estimator": ridge},
        "ColumnTransformer": {"transformers": [("scale", StandardScaler(), [0, 1])]},
        "FeatureUnion": {"transformer_list": [("scale", StandardScaler())]},
        "GridSearchCV": {"estimator": lr, "param_grid": {"C": [0.1, 1.0]}, "cv": 2},
        "RandomizedSearchCV": {"estimator": lr, "param_distributions": {"C": [0.1, 1.0]}, "n_iter": 2, "cv": 2},
        "Pipeline": {"steps": [("scale", StandardScaler()), ("model", LogisticRegression())]},
        "SparseCoder": {"dictionary": np.eye(4)},
        "StackingClassifier": {"estimators": [("lr", lr)], "cv": 2},
        "StackingRegressor": {"estimators": [("ridge", ridge)], "cv": 2},
        "VotingClassifier": {"estimators": [("lr", lr)]},
        "VotingRegressor": {"estimators": [("ridge", ridge)]},
        "TSNE": {"perplexity": 5.0, "max_iter": 250},
        "GaussianRandomProjection": {"n_components": 2},  # the default asks for more dimensions than 4 features
        "SparseRandomProjection": {"n_components": 2},
        "CalibratedClassifierCV": {"cv": 2},
        "LogisticRegressionCV": {"Cs": 2, "cv": 2},
        "TheilSenRegressor": {"max_subpopulation": 50},
        **{name: {"alphas": 3, "cv": 2} for name in ("ElasticNetCV", "LassoCV", "GraphicalLassoCV",
                                                    "MultiTaskElasticNetCV", "MultiTaskLassoCV")},
        **{name: {"n_components": 2} for name in ("DictionaryLearning", "MiniBatchDictionaryLearning")},
        "MeanShift": {"bandwidth": 1.0},
    }
    docs = [f"word{i % 5} and word{i % 3} words" for i in range(40)]
    records = [{"city": f"c{i % 3}", "size": float(i)} for i in range(40)]
    inputs: dict[str, tuple[Any, ...]] = {  # what each estimator learns from when it is not (X, y)
        **{name: (docs,) for name in ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")},
        **{name: (records,) for name in ("DictVectorizer", "FeatureHasher")},
        **{name: (y_class,) for name in ("LabelEncoder", "LabelBinarizer")},
        "MultiLabelBinarizer": ([{"a", "b"}, {"c"}],),
        "PatchExtractor": (np.random.default_rng(1).uniform(size=(3, 8, 8)),),  # images
        "KernelCenterer": (X @ X.T,),  # a kernel matrix
        "IsotonicRegression": (X[:, 0], y_reg),  # one feature
        "CategoricalNB": (X.astype(int), y_class),  # category codes
        **{name: (X, Y_class) for name in ("ClassifierChain", "MultiOutputClassifier")},
        **{name: (X, Y_reg) for name in ("RegressorChain", "MultiOutputRegressor", "MultiTaskElasticNet",
                                         "MultiTaskElasticNetCV", "MultiTaskLasso", "MultiTaskLassoCV", "CCA",
                                         "PLSCanonical", "PLSSVD")},
    }
    quick = {"n_estimators": 3, "max_iter": 20, "n_init": 1}
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated estimators say so when built
        for name, cls in all_estimators():
            if name == "FrozenEstimator":  # wraps a model already fitted
                est = cls(LogisticRegression().fit(X, y_class))
            else:
                est = cls(**required.get(name, {}))
                defaults = est.get_params(deep=False)
                est.set_params(**{k: min(v, defaults[k]) for k, v in quick.items()
                                  if type(defaults.get(k)) is int and k not in required.get(name, {})})
            args = inputs.get(name) or ((X, y_reg) if issubclass(cls, RegressorMixin) else (X, y_class))
            out.append((name, est, args))
    return out


def test_every_scikit_learn_estimator_gets_one_run_with_its_params_and_metrics(client: Client) -> None:
    from sklearn.base import is_classifier, is_regressor
    from threadpoolctl import threadpool_limits

    estimators = _sweep_estimators()  # built before autolog: FrozenEstimator's model is fitted here
    assert len(estimators) > 150
    mc.set_client(client)
    mc.autolog(log_datasets=False)
    try:
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):  # tiny fits; a shared machine
            warnings.simplefilter("ignore")  # convergence on 40 rows, and the like
            warnings.simplefilter("always", ModelcycleWarning)  # autolog's own: what it could not record
            for _, est, args in estimators:
                est.fit(*args)
    finally:
        mc.autolog(disable=True)
        mc.set_client(None)
    runs = {r.name: r for r in client.search_runs(limit=None, as_frame=False)}
    assert len(runs) == len(client.search_runs(limit=None, as_frame=False)), "one run per fit, none nested"
    assert sorted(runs) == sorted(name for name, _, _ in estimators)
    for name, est, _ in estimators:
        run = runs[name]
        assert run.status.value == "FINISHED", name
        assert run.tags["estimator_class"] == name
        assert set(run.params) == {k.replace("__", ".") for k in est.get_params(deep=True)}, name
        assert "fit_seconds" in run.metrics, name
        if is_classifier(est):
            assert "training_accuracy" in run.metrics, name
        if is_regressor(est):
            assert {"training_r2", "training_rmse"} <= set(run.metrics), name
    assert [str(w.message) for w in caught] == []


def test_a_store_that_cannot_be_reached_never_fails_the_fit(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelcycle.settings import Settings
    from modelcycle.tracking.fluent import get_client, set_client

    before = get_client()
    unreachable = Client(Settings.for_home(tmp_path / "h", capture=False).replace(
        store_uri="postgresql+psycopg://user:pw@127.0.0.1:9/nowhere"))
    set_client(unreachable)
    mc.autolog()
    try:
        X = np.random.default_rng(0).normal(size=(60, 3))
        with pytest.warns(ModelcycleWarning, match="autolog could not"):
            model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
        assert model.predict(X).shape == (60,), "the fitted model is the user's"
    finally:
        mc.autolog(disable=True)
        set_client(before)
