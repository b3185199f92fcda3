"""modelcycle: experiment tracking, data validation, pipelines, registry, serving and monitoring.

    import modelcycle as mc

    with mc.start_run(experiment="churn", params={"model": "rf"}):
        mc.log_metric("auc", 0.91)

    mc.search_runs(experiment="churn", order_by=["metrics.auc DESC"])

Names are loaded lazily: ``import modelcycle`` imports no pandas, SQLAlchemy or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelcycle.errors import ModelcycleError

# public name -> module that defines it; pinned by tests/test_public_api.py
_EXPORTS: dict[str, str] = {
    "ModelcycleError": "modelcycle.errors",
    "errors": "modelcycle.errors",
    "data": "modelcycle.data",
    "Settings": "modelcycle.settings",
    "Run": "modelcycle.entities",
    "RunStatus": "modelcycle.entities",
    "Experiment": "modelcycle.entities",
    "Metric": "modelcycle.entities",
    "Client": "modelcycle.tracking.client",
    "ActiveRun": "modelcycle.tracking.run",
    "autolog": "modelcycle.tracking.autolog",
    "models": "modelcycle.models",
    "evaluation": "modelcycle.evaluation",
    "ModelVersion": "modelcycle.entities",
    "AliasEvent": "modelcycle.entities",
    "Policy": "modelcycle.evaluation",
    "read_predictions": "modelcycle.serving.fluent",
    "log_labels": "modelcycle.serving.fluent",
    "labelled_predictions": "modelcycle.monitoring.feedback",
    "monitor": "modelcycle.monitoring",
    "MonitorReport": "modelcycle.monitoring",
    "AlertRules": "modelcycle.monitoring",
    **{
        name: "modelcycle.pipelines"
        for name in (
            "choice", "intrange", "loguniform", "pipeline", "register_materializer", "select_features", "step", "tune",
            "uniform", "TrialPruned", "PipelineResult",
        )
    },
    "Verdict": "modelcycle.evaluation",
    **{
        name: "modelcycle.registry.fluent"
        for name in (
            "delete_alias", "evaluate", "get_model_version", "load_model", "model_history", "promote", "register_model",
            "rollback", "search_model_versions", "set_alias", "validate_model",
        )
    },
    **{
        name: "modelcycle.tracking.fluent"
        for name in (
            "active_run", "download_artifacts", "end_run", "flush", "get_client", "get_metric_history",
            "get_run", "list_experiments", "log_artifact", "log_dataset", "log_dict", "log_figure",
            "log_metric", "log_metrics", "log_model", "log_param", "log_params", "log_table", "log_text",
            "search_runs", "seed_everything", "set_client", "set_experiment", "set_tag", "set_tags",
            "start_run",
        )
    },
}

_MODULES = {"errors", "data", "models", "evaluation"}  # exported as modules: mc.data.profile(...)
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":  # from the package's metadata, read when asked
        from modelcycle._deps import version

        globals()[name] = value = version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelcycle' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name in _MODULES else getattr(mod, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from modelcycle import data, errors, evaluation, models
    from modelcycle.entities import AliasEvent, Experiment, Metric, ModelVersion, Run, RunStatus
    from modelcycle.evaluation import Policy, Verdict
    from modelcycle.monitoring import AlertRules, MonitorReport, monitor
    from modelcycle.monitoring.feedback import labelled_predictions
    from modelcycle.pipelines import (
        PipelineResult,
        TrialPruned,
        choice,
        intrange,
        loguniform,
        pipeline,
        register_materializer,
        select_features,
        step,
        tune,
        uniform,
    )
    from modelcycle.registry.fluent import (
        delete_alias,
        evaluate,
        get_model_version,
        load_model,
        model_history,
        promote,
        register_model,
        rollback,
        search_model_versions,
        set_alias,
        validate_model,
    )
    from modelcycle.serving.fluent import log_labels, read_predictions
    from modelcycle.settings import Settings
    from modelcycle.tracking.autolog import autolog
    from modelcycle.tracking.client import Client
    from modelcycle.tracking.fluent import (
        active_run,
        download_artifacts,
        end_run,
        flush,
        get_client,
        get_metric_history,
        get_run,
        list_experiments,
        log_artifact,
        log_dataset,
        log_dict,
        log_figure,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
        log_table,
        log_text,
        search_runs,
        seed_everything,
        set_client,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
    )
    from modelcycle.tracking.run import ActiveRun
