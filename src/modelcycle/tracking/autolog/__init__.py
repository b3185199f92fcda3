"""Automatic logging of model training: scikit-learn, XGBoost and LightGBM, each patched when it is installed."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from types import ModuleType

from modelcycle._deps import require
from modelcycle.errors import ModelcycleWarning
from modelcycle.tracking.autolog._core import options, unpatch_all

__all__ = ["autolog"]


def _patchers() -> dict[str, Callable[[ModuleType], None]]:
    from modelcycle.tracking.autolog.boosting import patch_lightgbm, patch_xgboost
    from modelcycle.tracking.autolog.sklearn import patch_sklearn

    return {"sklearn": patch_sklearn, "xgboost": patch_xgboost, "lightgbm": patch_lightgbm}


def autolog(disable: bool = False, log_datasets: bool = True) -> None:
    """Record every model training of scikit-learn, XGBoost and LightGBM (those installed).

    Each scikit-learn ``fit`` (XGBoost's and LightGBM's estimators included) logs its params,
    training metrics, a model summary and the training data's fingerprint; ``xgboost.train`` and
    ``lightgbm.train`` log their params and ``num_boost_round``, each evaluation metric per
    iteration (step = iteration), and a summary with the feature names. A training call outside a
    run gets a run of its own, ended when it returns; the calls it makes (a Pipeline's steps, a
    grid search's candidates) are not logged separately. Calling it again changes the options;
    ``disable=True`` puts every original back.

    Args:
        disable: undo the patching.
        log_datasets: also record the training data's fingerprint, size and schema (scikit-learn API).

    Raises:
        MissingDependencyError: none of these libraries is installed.

    Example:
        >>> import modelcycle as mc
        >>> mc.autolog()
        >>> mc.autolog(disable=True)
    """
    if disable:
        unpatch_all()
        return
    options["log_datasets"] = log_datasets
    patchers = _patchers()
    installed = [name for name in patchers if importlib.util.find_spec(name) is not None]
    if not installed:
        require("sklearn", "autolog")  # says which extra to install
    for name in installed:
        try:
            module = importlib.import_module(name)
        except Exception as e:  # installed but broken (a missing system library): the others still work
            warnings.warn(f"autolog skips {name}, which could not be imported: {e}", ModelcycleWarning, stacklevel=2)
            continue
        patchers[name](module)
