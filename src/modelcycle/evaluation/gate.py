"""Validation gates: a written policy, checked against evaluations, gives a verdict with its evidence.

A policy in YAML::

    thresholds: {roc_auc: ">= 0.80", log_loss: "<= 0.45"}
    improvement: {metric: roc_auc, over: champion, min_delta: 0.0}
    slices: {column: region, max_regression: 0.02}
    latency_ms_per_row: "<= 2"
    require_data_validation: true
"""

from __future__ import annotations

import math
import operator
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInputError
from modelcycle.evaluation.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER, Evaluation, higher_is_better

__all__ = ["Policy", "RuleResult", "Verdict", "check_policy"]

_BOUND = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_KEYS = {"thresholds", "improvement", "slices", "latency_ms_per_row", "require_data_validation", "target"}
_METRICS = HIGHER_IS_BETTER | LOWER_IS_BETTER


def _bound(text: Any, where: str) -> tuple[str, float]:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        raise InvalidInputError(f"{where}: write a comparison such as \">= {text}\", not a bare number")
    match = _BOUND.match(str(text))
    if not match:
        raise InvalidInputError(f"{where}: {text!r} is not a bound; write it like \">= 0.80\" or \"<= 2\"")
    return match.group(1), float(match.group(2))


@dataclass(frozen=True)
class Policy:
    """What a candidate model must show before an alias may move to it.

    Example:
        >>> p = Policy.from_dict({"thresholds": {"roc_auc": ">= 0.8"}, "improvement": {"metric": "roc_auc"}})
        >>> p.thresholds, p.improvement["over"]
        ({'roc_auc': ('>=', 0.8)}, 'champion')
    """

    thresholds: dict[str, tuple[str, float]] = field(default_factory=dict)
    improvement: dict[str, Any] | None = None
    slices: dict[str, Any] | None = None
    latency_ms_per_row: tuple[str, float] | None = None
    require_data_validation: bool = False
    target: str = "y"
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policy:
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"a policy is a mapping of rules, not {type(d).__name__}")
        unknown = sorted(set(d) - _KEYS)
        if unknown:
            raise InvalidInputError(f"unknown policy keys: {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
        thresholds = {}
        for metric, text in (d.get("thresholds") or {}).items():
            if metric not in _METRICS:
                raise InvalidInputError(f"thresholds.{metric}: unknown metric; known: {', '.join(sorted(_METRICS))}")
            thresholds[str(metric)] = _bound(text, f"thresholds.{metric}")
        improvement = None
        if d.get("improvement") is not None:
            imp = dict(d["improvement"])
            extra = sorted(set(imp) - {"metric", "over", "min_delta"})
            if extra or "metric" not in imp:
                raise InvalidInputError("improvement needs {metric: <name>, over: champion, min_delta: 0.0}" +
                                        (f"; unknown keys: {', '.join(extra)}" if extra else ""))
            higher_is_better(str(imp["metric"]))
            improvement = {"metric": str(imp["metric"]), "over": str(imp.get("over", "champion")),
                           "min_delta": float(imp.get("min_delta", 0.0))}
        slices = None
        if d.get("slices") is not None:
            sl = dict(d["slices"])
            if "column" not in sl:
                raise InvalidInputError("slices needs {column: <name>, max_regression: 0.02}")
            slices = {"column": str(sl["column"]), "max_regression": float(sl.get("max_regression", 0.0)),
                      "metric": sl.get("metric")}
        latency = _bound(d["latency_ms_per_row"], "latency_ms_per_row") if d.get("latency_ms_per_row") is not None else None
        return cls(thresholds, improvement, slices, latency, bool(d.get("require_data_validation", False)),
                   str(d.get("target", "y")), dict(d))

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        from modelcycle import _yaml

        try:
            data = _yaml.load(Path(path).read_text(), source=str(path))
        except FileNotFoundError:
            raise InvalidInputError(f"policy file {str(path)!r} does not exist") from None
        except _yaml.YAMLError as e:
            raise InvalidInputError(f"policy file {path} is not valid YAML: {e}") from None
        try:
            return cls.from_dict(data or {})
        except InvalidInputError as e:
            raise InvalidInputError(f"{path}: {e}") from None

    @classmethod
    def coerce(cls, policy: Policy | Mapping[str, Any] | str | Path) -> Policy:
        if isinstance(policy, Policy):
            return policy
        if isinstance(policy, Mapping):
            return cls.from_dict(policy)
        return cls.load(policy)

    @property
    def slice_metric(self) -> str | None:
        if self.slices is None:
            return None
        return self.slices.get("metric") or (self.improvement or {}).get("metric") or next(iter(self.thresholds), None)


@dataclass
class RuleResult:
    """One rule of a policy with its evidence: the candidate's value and, where compared, the baseline's."""

    rule: str
    passed: bool
    expected: str
    candidate: Any = None
    baseline: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "expected": self.expected, "candidate": _json(self.candidate),
                "baseline": _json(self.baseline), "detail": self.detail}


def _json(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclass
class Verdict:
    """Whether a candidate passed a policy, with every rule's evidence. Stored, linked to the candidate version."""

    passed: bool
    rules: list[RuleResult]
    policy: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    run_id: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    baseline: str | None = None
    baseline_alias: str | None = None  # the alias the candidate was compared with (the improvement rule's ``over``) …
    baseline_version: int | None = None  # … and the version it pointed at then (None: it pointed nowhere)
    rows: int = 0
    stored: bool = False
    evaluation: Evaluation | None = field(default=None, repr=False)

    def failures(self) -> list[str]:
        return [f"{r.rule}: {r.detail}" for r in self.rules if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "passed": self.passed, "created_at": self.created_at, "run_id": self.run_id,
                "model_name": self.model_name, "model_version": self.model_version, "baseline": self.baseline,
                "baseline_alias": self.baseline_alias, "baseline_version": self.baseline_version,
                "rows": self.rows, "policy": self.policy, "rules": [r.to_dict() for r in self.rules]}

    def to_html(self, path: Any = None) -> str:
        """The rule table with its evidence, then the evaluation behind it."""
        from modelcycle.evaluation.report import verdict_html, write

        return write(verdict_html(self, self.evaluation), path)

    def __repr__(self) -> str:
        return f"<Verdict {'PASSED' if self.passed else 'FAILED'} {self.model_name}/{self.model_version} {len(self.rules)} rules>"


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}" if isinstance(v, float) else str(v)


def check_policy(policy: Policy, candidate: Evaluation, baseline: Evaluation | None = None,
                 data_errors: list[str] | None = None, baseline_name: str | None = None) -> Verdict:
    """Apply ``policy`` to a candidate's evaluation (and the baseline's, on the same rows).

    ``data_errors`` lists the error-severity anomalies of the evaluation data (None when data
    validation was not run).

    Example:
        >>> from modelcycle.evaluation.metrics import Evaluation
        >>> cand = Evaluation("classification", 100, {"roc_auc": 0.86})
        >>> check_policy(Policy.from_dict({"thresholds": {"roc_auc": ">= 0.8"}}), cand).passed
        True
    """
    rules: list[RuleResult] = []
    for metric, (op, bound) in policy.thresholds.items():
        value = candidate.metrics.get(metric)
        ok = value is not None and not math.isnan(value) and _OPS[op](value, bound)
        detail = f"{metric} = {_fmt(value)}, needs {op} {bound:g}" if value is not None else f"{metric} was not computed for a {candidate.task} model"
        rules.append(RuleResult(f"threshold {metric}", ok, f"{op} {bound:g}", value, baseline.metrics.get(metric) if baseline else None, detail))
    if policy.improvement is not None:
        metric, delta = policy.improvement["metric"], policy.improvement["min_delta"]
        value = candidate.metrics.get(metric)
        over = policy.improvement["over"]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            rules.append(RuleResult(f"improvement {metric} over {over}", False, f"{delta:+g}", value,
                                    baseline.metrics.get(metric) if baseline else None,
                                    f"{metric} was not computed for a {candidate.task} model"))
        elif baseline is None:
            rules.append(RuleResult(f"improvement {metric} over {over}", True, f"{delta:+g}", value, None,
                                    f"no {over} yet: nothing to improve on, the first model passes"))
        else:
            base = baseline.metrics.get(metric)
            if value is None or base is None or math.isnan(value) or math.isnan(base):
                rules.append(RuleResult(f"improvement {metric} over {over}", False, f"{delta:+g}", value, base,
                                        f"{metric} could not be computed for both models"))
            else:
                gain = value - base if higher_is_better(metric) else base - value
                ok = gain >= delta
                change = "better" if gain > 0 else "worse" if gain < 0 else "equal"
                rules.append(RuleResult(f"improvement {metric} over {over}", ok, f"better by ≥ {delta:g}", value, base,
                                        f"{metric} {_fmt(value)} vs {_fmt(base)} ({over}): {change} by {abs(gain):.4g}"))
    if policy.slices is not None:
        col, limit = policy.slices["column"], policy.slices["max_regression"]
        metric = policy.slice_metric
        cand_slices = candidate.slices.get(col)
        if cand_slices is None:
            rules.append(RuleResult(f"slices by {col}", False, f"≤ {limit:g} worse per slice", None, None,
                                    f"the evaluation has no slices by {col!r}"))
        elif metric is None:
            rules.append(RuleResult(f"slices by {col}", False, f"≤ {limit:g} worse per slice", None, None,
                                    "name the slice metric (slices.metric), or an improvement or threshold metric"))
        elif baseline is None:
            rules.append(RuleResult(f"slices by {col}", True, f"≤ {limit:g} worse per slice", None, None,
                                    "no baseline: no slice can regress"))
        else:
            base_slices = baseline.slices.get(col, {})
            worst_name, worst = None, -math.inf
            evidence = {}
            for value, stats in cand_slices.items():
                c, b = stats.get(metric), base_slices.get(value, {}).get(metric)
                if c is None or b is None or math.isnan(c) or math.isnan(b):
                    continue
                regression = b - c if higher_is_better(metric) else c - b
                evidence[value] = {"candidate": c, "baseline": b, "rows": stats.get("rows")}
                if regression > worst:
                    worst_name, worst = value, regression
            ok = worst <= limit
            detail = (f"worst slice {col}={worst_name}: {metric} {_fmt(evidence[worst_name]['candidate'])} vs "
                      f"{_fmt(evidence[worst_name]['baseline'])} ({'regressed' if worst > 0 else 'no regression'} by {max(worst, 0):.4g})"
                      if worst_name is not None else "no slice had the metric for both models")
            rules.append(RuleResult(f"slices by {col} ({metric})", ok, f"≤ {limit:g} worse per slice", evidence, None, detail))
    if policy.latency_ms_per_row is not None:
        op, bound = policy.latency_ms_per_row
        value = candidate.latency_ms_per_row
        rules.append(RuleResult("latency_ms_per_row", _OPS[op](value, bound), f"{op} {bound:g}", value,
                                baseline.latency_ms_per_row if baseline else None, f"{value:.4g} ms per row, needs {op} {bound:g}"))
    if policy.require_data_validation:
        if data_errors is None:
            rules.append(RuleResult("data validation", False, "passed", None, None,
                                    "the evaluation data was not validated (the model has no reference profile to validate against)"))
        else:
            rules.append(RuleResult("data validation", not data_errors, "passed", len(data_errors), None,
                                    "no errors" if not data_errors else f"{len(data_errors)} errors: " + "; ".join(data_errors[:5])))
    return Verdict(passed=all(r.passed for r in rules), rules=rules, policy=policy.source, baseline=baseline_name,
                   rows=candidate.rows)
