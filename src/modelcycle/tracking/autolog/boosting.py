"""Autologging for XGBoost and LightGBM: their scikit-learn estimators and their native ``train``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from modelcycle.tracking.autolog._core import log_history, log_params, logged_call, param_text, patch
from modelcycle.tracking.autolog.sklearn import patch_estimators

__all__ = ["patch_lightgbm", "patch_xgboost"]

XGBOOST_ESTIMATORS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")
LIGHTGBM_ESTIMATORS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")


def _flat_params(params: Any) -> dict[str, str]:
    """A booster's params as text; XGBoost also takes a list of pairs, where a key may repeat (``eval_metric``)."""
    pairs = params.items() if isinstance(params, Mapping) else list(params or ())
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(str(key), []).append(value)
    return {key: param_text(values[0] if len(values) == 1 else values) for key, values in grouped.items()}


def _log_train(run: Any, library: str, arguments: Mapping[str, Any], history: Mapping[str, Any], summary: dict[str, Any],
               seconds: float) -> None:
    params = _flat_params(arguments["params"])
    params["num_boost_round"] = param_text(arguments["num_boost_round"])
    log_params(run, params)
    run.set_tags({"modelcycle.autolog": library, "estimator_class": "Booster"})
    run.log_metric("fit_seconds", seconds)
    log_history(run, history)
    run.log_dict({"class": f"{library}.Booster", "params": params, **summary, "fit_seconds": seconds}, "model_summary.json")


def _wrap_train(library: str, prepare: Callable[[dict[str, Any]], dict[str, Any]],
                describe: Callable[[Any], dict[str, Any]], original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``train(params, data, num_boost_round, ...)``: ``prepare`` adds what collects the evaluation history
    to the arguments and returns that history (filled during training); ``describe`` summarises the booster."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # let the library answer (or accept its deprecated spelling), unrecorded
            return original(*args, **kwargs)
        history = prepare(bound.arguments)
        arguments = signature.bind(*bound.args, **bound.kwargs)
        arguments.apply_defaults()
        return logged_call(f"{library}.train", lambda: original(*bound.args, **bound.kwargs),
                           lambda run, booster, seconds: _log_train(run, library, arguments.arguments, history,
                                                                     describe(booster), seconds))

    return train


def _xgboost_history(arguments: dict[str, Any]) -> dict[str, Any]:
    if not arguments.get("evals"):
        return {}
    if arguments.get("evals_result") is None:
        arguments["evals_result"] = {}
    return arguments["evals_result"]


def _xgboost_summary(booster: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "boosted_rounds": booster.num_boosted_rounds(),
        "num_features": booster.num_features(),
        "feature_names": booster.feature_names or [f"f{i}" for i in range(booster.num_features())],
    }
    if booster.attr("best_iteration") is not None:  # set by early stopping
        summary["best_iteration"] = booster.best_iteration
        summary["best_score"] = booster.best_score
    return summary


def _lightgbm_history(arguments: dict[str, Any]) -> dict[str, Any]:
    if not arguments.get("valid_sets"):
        return {}
    import lightgbm

    history: dict[str, Any] = {}
    arguments["callbacks"] = [*(arguments.get("callbacks") or ()), lightgbm.record_evaluation(history)]
    return history


def _lightgbm_summary(booster: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "boosted_rounds": booster.current_iteration(),
        "num_trees": booster.num_trees(),
        "num_features": booster.num_feature(),
        "feature_names": booster.feature_name(),
    }
    if booster.best_iteration > 0:  # set by early stopping
        summary["best_iteration"] = booster.best_iteration
        summary["best_score"] = {name: dict(scores) for name, scores in booster.best_score.items()}
    return summary


def patch_xgboost(xgboost: ModuleType) -> None:
    """Patch ``xgboost.train`` and the ``fit`` of XGBoost's scikit-learn estimators."""
    patch_estimators([getattr(xgboost, name) for name in XGBOOST_ESTIMATORS if hasattr(xgboost, name)], "xgboost")
    patch(xgboost, "train", functools.partial(_wrap_train, "xgboost", _xgboost_history, _xgboost_summary))


def patch_lightgbm(lightgbm: ModuleType) -> None:
    """Patch ``lightgbm.train`` and the ``fit`` of LightGBM's scikit-learn estimators."""
    patch_estimators([getattr(lightgbm, name) for name in LIGHTGBM_ESTIMATORS if hasattr(lightgbm, name)], "lightgbm")
    patch(lightgbm, "train", functools.partial(_wrap_train, "lightgbm", _lightgbm_history, _lightgbm_summary))
