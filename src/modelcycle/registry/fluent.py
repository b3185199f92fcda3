"""Module-level registry functions (``mc.register_model``, ``mc.load_model``, ``mc.promote`` …) on the default Client."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.entities import AliasEvent, LoggedModel, ModelVersion
from modelcycle.errors import InvalidInputError
from modelcycle.registry.registry import Registry
from modelcycle.tracking.fluent import get_client

if TYPE_CHECKING:
    from modelcycle.evaluation import Evaluation, Policy, Verdict
    from modelcycle.models import LoadedModel
    from modelcycle.tracking.client import Client

__all__ = [
    "delete_alias",
    "evaluate",
    "get_model_version",
    "get_registry",
    "load_model",
    "model_history",
    "promote",
    "register_model",
    "rollback",
    "search_model_versions",
    "set_alias",
    "validate_model",
]

_registries: weakref.WeakKeyDictionary[Client, Registry] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def get_registry(client: Client | None = None) -> Registry:
    """The Registry of ``client`` (the default Client when None); one per client, so its model cache is shared."""
    client = client or get_client()
    with _lock:
        registry = _registries.get(client)
        if registry is None:
            registry = _registries[client] = Registry(client)
    return registry


def register_model(uri: str | LoggedModel, name: str, description: str | None = None,
                   tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Register a logged model (``runs:/<run_id>/model``) as the next version of ``name``."""
    return get_registry().register_model(uri, name, description, tags)


def get_model_version(name: str, version_or_alias: int | str = "latest") -> ModelVersion:
    return get_registry().get_model_version(name, version_or_alias)


def search_model_versions(filter: str | None = None) -> list[ModelVersion]:
    """Model versions matching ``filter`` (all when None), e.g. ``"name = 'churn' and tags.team = 'risk'"``."""
    return get_registry().search_model_versions(filter)


def set_alias(name: str, alias: str, version: int, reason: str | None = None) -> AliasEvent:
    return get_registry().set_alias(name, alias, version, reason)


def delete_alias(name: str, alias: str, reason: str | None = None) -> AliasEvent:
    return get_registry().delete_alias(name, alias, reason)


def rollback(name: str, alias: str = "champion", reason: str | None = None) -> AliasEvent:
    """Move ``name@alias`` back to the version it had before its latest move (recorded in the audit log)."""
    return get_registry().rollback(name, alias, reason)


def promote(name: str, version: int, alias: str = "champion", verdict: Verdict | None = None, force: bool = False,
            reason: str | None = None) -> AliasEvent:
    """Move ``name@alias`` to ``version`` on a passing verdict (``force=True`` overrides, on the record)."""
    return get_registry().promote(name, version, alias, verdict, force, reason)


def model_history(name: str, alias: str | None = None) -> list[AliasEvent]:
    """The audit log of a model's aliases, oldest first."""
    return get_registry().history(name, alias)


def load_model(uri: str | LoggedModel, trust: bool = False, trusted_types: Sequence[str] | None = None) -> LoadedModel:
    """Load ``runs:/<run_id>/model``, ``models:/name/3``, ``models:/name@champion`` or a package folder, verified first.

    What the model file may build is decided by the loader: scikit-learn, XGBoost, LightGBM, numpy
    and scipy types (see :mod:`modelcycle.models.trust`), plus the types you name in
    ``trusted_types`` (or ``MODELCYCLE_TRUSTED_TYPES``), never what the package itself lists.
    ``trust=True`` is needed (and only then allowed) for pickled PythonModel packages.
    """
    return get_registry().load_model(uri, trust, trusted_types)


def _model(model: Any, registry: Registry, trust: bool) -> tuple[Any, str]:
    if isinstance(model, (str, LoggedModel)):
        text = model.uri if isinstance(model, LoggedModel) else model
        return registry.load_model(text, trust), text
    if isinstance(model, ModelVersion):
        return registry.load_model(model.uri, trust), model.uri
    if not hasattr(model, "predict"):
        raise InvalidInputError(f"cannot evaluate a {type(model).__name__}: give a model URI or an object with predict()")
    return model, type(getattr(model, "raw", model)).__name__


def _log(evaluation: Evaluation) -> None:
    """Inside a run: the metrics (the baseline's as ``baseline.<metric>``), the JSON and the HTML report."""
    run = get_client().active_run()
    if run is None:
        return
    run.log_metrics({**evaluation.metrics, "latency_ms_per_row": evaluation.latency_ms_per_row})
    if evaluation.baseline is not None:
        run.log_metrics({f"baseline.{k}": v for k, v in evaluation.baseline.metrics.items()})
    run.log_dict(evaluation.to_dict(), "evaluation/evaluation.json")
    run.log_text(evaluation.to_html(), "evaluation/report.html")


def evaluate(model: Any, data: Any, target: str = "y", task: str = "auto", slices: Sequence[str] | None = None,
             baseline: Any = None, trust: bool = False) -> Evaluation:
    """Evaluate a model (URI, ModelVersion or object) on labelled data; with ``baseline`` (e.g.
    ``"models:/churn@champion"``) the baseline is evaluated on exactly the same rows.

    Inside a run, the metrics, ``evaluation/evaluation.json`` and ``evaluation/report.html`` are logged.
    """
    from modelcycle.evaluation import evaluate_model

    registry = get_registry()
    candidate, name = _model(model, registry, trust)
    base, base_name = _model(baseline, registry, trust) if baseline is not None else (None, "")
    result = evaluate_model(candidate, data, target, task, slices, base, name=name, baseline_name=base_name)
    _log(result)
    return result


def validate_model(candidate: str | ModelVersion | LoggedModel, data: Any, policy: Policy | Mapping[str, Any] | str | Path,
                   target: str | None = None, trust: bool = False) -> Verdict:
    """Check a registered version against a policy on ``data``; the verdict is stored, linked to the version.

    The baseline is the alias the policy's improvement rule names (``over: champion``) of the
    same model; with no such alias yet, the improvement rule passes and says why.
    """
    from modelcycle.evaluation import Policy, check_policy, evaluate_model

    registry = get_registry()
    rules = Policy.coerce(policy)
    text = candidate.uri if isinstance(candidate, (ModelVersion, LoggedModel)) else str(candidate)
    _, version = registry.resolve(text)
    if version is None:
        raise InvalidInputError(f"{text!r}: validate a registered version (<name>/<version>, <name>@<alias> or models:/…), "
                                "so the verdict can be linked to it")
    model = registry.load_model(version.uri, trust)
    over = (rules.improvement or {}).get("over", "champion")
    baseline_version = None
    compared = rules.improvement is not None or rules.slices is not None
    if compared:
        try:
            baseline_version = registry.get_model_version(version.name, over)
        except KeyError:
            baseline_version = None
    alias_version = baseline_version.version if baseline_version is not None else None
    if baseline_version is not None and baseline_version.version == version.version:
        baseline_version = None  # validating the champion against itself: nothing to compare
    baseline = registry.load_model(baseline_version.uri, trust) if baseline_version else None
    slices = [rules.slices["column"]] if rules.slices else None
    evaluation = evaluate_model(model, data, target or rules.target, "auto", slices, baseline, name=version.uri,
                                baseline_name=baseline_version.uri if baseline_version else "")
    data_errors = None
    if rules.require_data_validation and model.profile is not None:
        from modelcycle.data import infer_schema, validate

        features = data.drop(columns=[target or rules.target])
        report = validate(features, infer_schema(model.profile))
        data_errors = [f"{a.column}: {a.check}" for a in report.anomalies if a.severity == "error"]
    verdict = check_policy(rules, evaluation, evaluation.baseline, data_errors,
                           f"{over} (version {baseline_version.version})" if baseline_version else None)
    if compared:  # promote() moves the alias only while it still points where it pointed for this comparison
        verdict.baseline_alias, verdict.baseline_version = over, alias_version
    run = get_client().active_run()
    verdict.run_id = run.id if run is not None else None
    registry.record_verdict(verdict, version.name, version.version)
    _log(evaluation)
    if run is not None:
        run.log_dict(verdict.to_dict(), "evaluation/verdict.json")
    verdict.evaluation = evaluation
    return verdict
