"""Ready-made steps for tabular problems: load, validate, split, select features, tune and train, evaluate, register.

    from modelcycle.pipelines.steps import load_table, validate_table, split_table, select_columns, tune_and_train, \\
        evaluate_on, validate_and_register

Each is an ``@mc.step``: cached, tracked, and usable in any pipeline.
"""

from __future__ import annotations

from typing import Any

from modelcycle._deps import require
from modelcycle.errors import InvalidInputError
from modelcycle.pipelines.core import step

__all__ = ["evaluate_on", "labelled_predictions", "load_table", "select_columns", "split_table", "tune_and_train",
           "validate_and_register", "validate_table"]

MODELS = ("logreg", "random_forest", "hgb")


@step
def load_table(path: str) -> Any:
    """A CSV, TSV or Parquet file as a DataFrame (the file's size and modification time are part of the cache key)."""
    import pandas as pd

    from modelcycle.data.profile import iter_batches

    return pd.concat(list(iter_batches(path, 1_000_000)), ignore_index=True)


@step(cache=False)
def labelled_predictions(model: str, since: str = "30d", target: str = "label") -> Any:
    """The served model's labelled predictions of the last ``since`` (``30d``, ``12h``) as a training table: its inputs,
    ``target``, ``predicted_at`` and ``version`` (see ``mc.labelled_predictions``).

    Read again on every run (the log grows); the steps after it re-run only when the table changed.
    """
    import time

    from modelcycle.pipelines.core import parse_duration
    from modelcycle.store.predictions import read_labelled, settings_root
    from modelcycle.tracking.fluent import get_client

    seconds = parse_duration(since)
    if not seconds:
        raise InvalidInputError(f"since {since!r} must be a duration such as 30d or 12h")
    return read_labelled(settings_root(get_client().settings), model, time.time() - seconds, None, target)


@step
def validate_table(df: Any, schema: str | None = None, target: str | None = None) -> Any:
    """Check ``df`` against a schema YAML (written by ``modelcycle data infer-schema``); errors stop the pipeline.

    Without a schema the data is only profiled (the profile is logged). Returns ``df`` unchanged.
    """
    from modelcycle.data import Schema, profile, validate
    from modelcycle.tracking.fluent import get_client

    run = get_client().active_run()
    if schema is None:
        if run is not None:
            run.log_bytes(profile(df).to_bytes(), "data.profile")
        return df
    features = df.drop(columns=[target]) if target and target in df.columns and target not in Schema.load(schema).columns else df
    report = validate(features, Schema.load(schema))  # logged into the step's run
    report.raise_for_errors()
    return df


@step(outputs=("train", "test"))
def split_table(df: Any, target: str, method: str = "stratified", test_size: float = 0.25, time_column: str | None = None,
                seed: int = 0) -> Any:
    """Split rows into train and test: ``random``, ``stratified`` (on the target) or ``time`` (the latest rows are the test set)."""
    if target not in df.columns:
        raise InvalidInputError(f"split_table: no target column {target!r}; columns: {', '.join(map(str, df.columns))}")
    if not 0 < test_size < 1:
        raise InvalidInputError(f"test_size must be between 0 and 1, not {test_size}")
    if method == "time":
        if time_column is None or time_column not in df.columns:
            raise InvalidInputError("a time split needs time_column= naming a column of the data")
        ordered = df.sort_values(time_column, kind="stable")
        cut = round(len(ordered) * (1 - test_size))
        return ordered.iloc[:cut], ordered.iloc[cut:]
    if method not in ("random", "stratified"):
        raise InvalidInputError(f"unknown split method {method!r}; use random, stratified or time")
    require("sklearn", "the built-in step split_table")
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=df[target] if method == "stratified" else None)
    return train, test


@step
def select_columns(train: Any, target: str, method: str = "mutual_info", k: int | None = None) -> list:
    """The feature columns to keep (see ``mc.select_features``); the selection and its plot are logged."""
    from modelcycle.pipelines.features import select_features

    return select_features(train.drop(columns=[target]), train[target], method=method, k=k).selected


def _preprocessor(X: Any) -> Any:
    from pandas.api import types as t

    require("sklearn", "the built-in training steps")
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if t.is_numeric_dtype(X[c].dtype) and not t.is_bool_dtype(X[c].dtype)]
    other = [c for c in X.columns if c not in numeric]
    parts = []
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if other:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), other))
    return ColumnTransformer(parts)


def _estimator(family: str, params: dict[str, Any], seed: int, classification: bool) -> Any:
    require("sklearn", "the built-in training steps")
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    if family == "logreg":
        return LogisticRegression(C=params["C"], max_iter=2000) if classification else Ridge(alpha=1.0 / params["C"])
    if family == "random_forest":
        cls = RandomForestClassifier if classification else RandomForestRegressor
        return cls(n_estimators=params["n_estimators"], max_depth=params["max_depth"], random_state=seed, n_jobs=1)
    cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
    return cls(learning_rate=params["learning_rate"], max_iter=params["max_iter"], random_state=seed)


@step
def tune_and_train(train: Any, target: str, features: list | None = None, model: str = "auto", n_trials: int = 20,
                   metric: str | None = None, cv: int = 3, seed: int = 0) -> Any:
    """Tune a model family (or pick one: ``model="auto"``) by cross-validation on ``train``, then fit the best on all of it.

    Every trial is a child run of the step's run. Returns a scikit-learn Pipeline (preprocessing + estimator).
    """
    from pandas.api import types as t

    require("sklearn", "the built-in step tune_and_train")
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline

    from modelcycle.pipelines.tune import choice, intrange, loguniform, tune

    if model != "auto" and model not in MODELS:
        raise InvalidInputError(f"unknown model family {model!r}; use auto or one of {', '.join(MODELS)}")
    X = train[features] if features else train.drop(columns=[target])
    y = train[target]
    classification = not t.is_float_dtype(y.dtype)
    scoring = metric or ("roc_auc" if classification and y.nunique() == 2 else "accuracy" if classification else "r2")
    space: dict[str, Any] = {
        "family": choice(list(MODELS)) if model == "auto" else model,
        "C": loguniform(1e-3, 1e2), "n_estimators": intrange(50, 300, 50), "max_depth": intrange(2, 12),
        "learning_rate": loguniform(0.02, 0.5), "max_iter": intrange(50, 300, 50),
    }

    def build(params: dict[str, Any]) -> Any:
        return Pipeline([("prep", _preprocessor(X)), ("model", _estimator(params["family"], params, seed, classification))])

    def objective(params: dict[str, Any]) -> float:
        return float(cross_val_score(build(params), X, y, cv=cv, scoring=scoring).mean())

    result = tune(objective, space, n_trials=n_trials, direction="maximize", seed=seed, pruner=None)
    return build(result.best_params).fit(X, y)


@step
def evaluate_on(model: Any, test: Any, target: str) -> dict:
    """The model's metrics on the test set (see ``mc.evaluate``), logged in the step's run."""
    from modelcycle.evaluation import evaluate_model

    names = list(getattr(model, "feature_names_in_", [])) or [c for c in test.columns if c != target]
    evaluation = evaluate_model(model, test[[*names, target]], target=target)
    from modelcycle.tracking.fluent import get_client

    run = get_client().active_run()
    if run is not None:
        run.log_metrics(evaluation.metrics)
        run.log_text(evaluation.to_html(), "evaluation.html")
    return {k: float(v) for k, v in evaluation.metrics.items()}


@step(cache=False)
def validate_and_register(model: Any, train: Any, test: Any, target: str, name: str, policy: Any, alias: str = "champion") -> dict:
    """Log the model, register it as the next version of ``name``, gate it with ``policy``, promote it when it passes.

    Never cached: registering is an action, and the champion it is compared with may have changed.
    """
    from modelcycle.registry.fluent import promote, register_model, validate_model
    from modelcycle.tracking.fluent import get_client

    features = list(getattr(model, "feature_names_in_", [])) or [c for c in train.columns if c != target]
    run = get_client().active_run()
    if run is None:
        raise InvalidInputError("validate_and_register runs inside a pipeline step (it logs the model into the step's run)")
    logged = run.log_model(model, reference_data=train[features])
    version = register_model(logged, name, description=f"from pipeline step run {run.id[:8]}")
    verdict = validate_model(version, test, policy, target=target)  # slice columns stay in; the model uses its features
    promoted = None
    if verdict.passed:
        promoted = promote(name, version.version, alias=alias, verdict=verdict).to_version
    return {"version": version.version, "passed": verdict.passed, "promoted_to": alias if promoted else None,
            "verdict": verdict.id, "failures": verdict.failures()}
