"""The project spec, ``modelcycle.yaml``: what the controller trains, gates, serves, monitors and when it retrains.

Every mistake is reported with the file, the line and how to fix it, before anything runs::

    name: churn
    pipeline: pipelines/training.py:training
    data: {source: data/incoming/, schema: schema.yaml, feedback: 30d}
    model: {name: churn, target: churned, policy: policy.yaml}
    serve: {model: churn@champion, shadow: churn@challenger}
    monitor: {window: 1h, drift: {method: auto, share: 0.3}, performance: {metric: roc_auc, min: 0.75}}
    triggers:
      - schedule: "0 3 * * *"
      - on: new_data
      - on: drift
      - on: performance
    agent: {interval: 1m, retry: {min_new_rows: 200, backoff: 10m, max_backoff: 6h}}
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.errors import ConfigurationError

__all__ = ["PREDICTIONS", "ProjectSpec", "Retry", "SpecError", "Trigger", "load_spec"]

SPEC_FILE = "modelcycle.yaml"
TRIGGERS = ("new_data", "drift", "performance", "schedule")  # schedule last
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$")
PREDICTIONS = "predictions"  # data.source: the prediction log joined with its labels, instead of a folder
CLASSIFICATION_METRICS = {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
_METRIC_RANGE = {**{m: (0.0, 1.0) for m in ("accuracy", "precision", "recall", "f1", "roc_auc")},
                 **{m: (0.0, None) for m in ("log_loss", "rmse", "mae", "mape")}, "r2": (None, 1.0)}
MANY_CLASSES = 100  # a whole-number target with more distinct values is taken for a regression target
REGRESSION_METRICS = {"rmse", "mae", "mape", "r2"}
_TOP = {"name", "pipeline", "executor", "data", "model", "serve", "monitor", "triggers", "agent", "params"}


class SpecError(ConfigurationError):
    """The project spec is not valid; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Trigger:
    kind: str  # new_data | drift | performance | schedule
    schedule: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Retry:
    """When the agent tries again while a drift or performance alert still fires after a cycle that did not fix it:
    once ``min_new_rows`` labelled predictions arrived since that cycle started, or the data source changed, or at
    the latest after ``backoff`` seconds, doubling with each attempt up to ``max_backoff``."""

    min_new_rows: int = 200
    backoff: float = 600.0
    max_backoff: float = 6 * 3600.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th attempt (1 for the first) when nothing new arrived."""
        return min(self.max_backoff, self.backoff * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class ProjectSpec:
    """A loaded, checked ``modelcycle.yaml``; paths are absolute (relative ones are read from the spec's folder)."""

    name: str
    path: Path
    root: Path
    pipeline: str | None = None  # "file.py:function"
    executor: str = "local"  # where the agent runs the pipeline: local, dask (a LocalCluster) or dask://host:port
    data_source: Path | str | None = None  # a folder, a file or an object-store URL; None with feedback_only
    feedback: float | None = None  # seconds of labelled predictions handed to the pipeline (None: none)
    feedback_only: bool = False
    schema: Path | None = None
    model: str = ""
    target: str | None = None
    policy: Any = None  # a file path or a mapping
    alias: str = "champion"
    serve_model: str | None = None
    serve_shadow: str | None = None
    serve_url: str | None = None
    window: str = "1h"
    drift_method: str = "auto"
    drift_share: float = 0.5
    performance_metric: str | None = None
    performance_min: float | None = None
    performance_max: float | None = None
    min_labelled: int = 30
    min_rows: int = 50
    alert_webhook: str | None = None
    alert_file: Path | None = None
    triggers: tuple[Trigger, ...] = ()
    interval: float = 60.0
    retry: Retry = field(default_factory=Retry)
    params: dict[str, Any] = field(default_factory=dict)

    def alert_rules(self) -> Any:
        from modelcycle.monitoring import AlertRules

        return AlertRules(drift_share=self.drift_share, performance_metric=self.performance_metric,
                          performance_min=self.performance_min, performance_max=self.performance_max,
                          min_labelled=self.min_labelled, min_rows=self.min_rows, webhook=self.alert_webhook,
                          file=str(self.alert_file) if self.alert_file else None)

    def has_trigger(self, kind: str) -> bool:
        return any(t.kind == kind for t in self.triggers)


class _Lines:
    """YAML values with the line each came from, for messages."""

    def __init__(self, path: Path, text: str):
        from modelcycle import _yaml

        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            node = _yaml.compose(text, source=str(path), error=SpecError)
            self.value = self._walk(node, ()) if node is not None else None
        except _yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else "somewhere"
            raise SpecError(f"{path}: {where}: this is not valid YAML ({getattr(e, 'problem', e)}); check indentation and quotes") from None

    def _walk(self, node: Any, at: tuple[Any, ...]) -> Any:
        # The nodes come from _yaml.compose: aliases and nesting are bounded, merge keys applied, so this walk is too.
        from modelcycle import _yaml

        self.lines[at] = node.start_mark.line + 1
        if isinstance(node, _yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = k.value if isinstance(k, _yaml.ScalarNode) else _yaml.construct(k)
                if not isinstance(key, Hashable):
                    raise SpecError(f"{self.path}, line {k.start_mark.line + 1}: a key must be a plain word, not a list or a mapping")
                self.lines[(*at, key)] = k.start_mark.line + 1
                out[key] = self._walk(v, (*at, key))
            return out
        if isinstance(node, _yaml.SequenceNode):
            return [self._walk(v, (*at, i)) for i, v in enumerate(node.value)]
        return _yaml.construct(node)

    def fail(self, at: tuple[Any, ...], message: str) -> SpecError:
        line = self.lines.get(at)
        while line is None and at:
            at = at[:-1]
            line = self.lines.get(at)
        return SpecError(f"{self.path}, line {line or 1}: {message}")


def load_spec(path: str | Path | None = None) -> ProjectSpec:
    """Read and check a project spec (``modelcycle.yaml`` in the current folder by default).

    Raises:
        SpecError: the file is missing or not valid, naming the line and the fix.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "modelcycle.yaml").write_text("name: churn\\nmodel: {name: churn, target: churned}\\n")
        >>> load_spec(folder).model
        'churn'
    """
    p = Path(path) if path is not None else Path.cwd()
    if p.is_dir():
        p = p / SPEC_FILE
    if not p.is_file():
        raise SpecError(f"no project spec at {p}; create one with `modelcycle init NAME` or pass --spec path/to/modelcycle.yaml")
    doc = _Lines(p, p.read_text(encoding="utf-8"))
    d = doc.value
    if not isinstance(d, dict):
        raise doc.fail((), "the spec must be a mapping of keys such as name:, pipeline:, model: and triggers:")
    for key in d:
        if key not in _TOP:
            raise doc.fail((key,), f"unknown key {key!r}; the spec's keys are {', '.join(sorted(_TOP))}")
    root = p.parent.resolve()

    def text(at: tuple[Any, ...], value: Any, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise doc.fail(at, f"{what} must be text, e.g. {at[-1]}: ...")
        return value.strip()

    def section(key: str, keys: set[str]) -> dict[str, Any]:
        value = d.get(key) or {}
        if not isinstance(value, dict):
            raise doc.fail((key,), f"{key}: must be a mapping with keys {', '.join(sorted(keys))}")
        for k in value:
            if k not in keys:
                raise doc.fail((key, k), f"unknown key {key}.{k}; {key}: takes {', '.join(sorted(keys))}")
        return value

    def number(at: tuple[Any, ...], value: Any, lo: float | None = None, hi: float | None = None) -> float:
        import math

        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise doc.fail(at, f"{'.'.join(map(str, at))} must be a finite number, not {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            where = ".".join(map(str, at))
            bounds = f"between {lo:g} and {hi:g}" if lo is not None and hi is not None else \
                f"at least {lo:g}" if lo is not None else f"at most {hi:g}"
            raise doc.fail(at, f"{where} must be {bounds}, not {value}")
        return float(value)

    def duration(at: tuple[Any, ...], value: Any, most: float) -> float:
        import math

        from modelcycle.monitoring import parse_window

        where = ".".join(map(str, at))
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise doc.fail(at, f"{where} must be a duration such as 30s, 10m, 1h or 1d, not {value!r}")
        try:
            seconds = float(parse_window(value))
        except Exception as e:
            raise doc.fail(at, f"{where}: {e}") from None
        if seconds > most:
            raise doc.fail(at, f"{where} must be at most {int(most // 86400)}d, not {value!r}")
        return seconds

    name = text(("name",), d.get("name"), "name") if "name" in d else ""
    if not name:
        raise doc.fail((), "the spec needs a name: (the project's name, e.g. name: churn)")
    if not _NAME.match(name):
        raise doc.fail(("name",), f"name {name!r} may use letters, digits, '.', '_' and '-' only")
    out: dict[str, Any] = {"name": name, "path": p.resolve(), "root": root}

    if "pipeline" in d:
        ref = text(("pipeline",), d["pipeline"], "pipeline")
        file, _, func = ref.rpartition(":")
        if not file or not func.isidentifier():
            raise doc.fail(("pipeline",), f"pipeline {ref!r} must name a file and a function: pipeline: pipelines/training.py:training")
        if not (root / file).is_file():
            raise doc.fail(("pipeline",), f"pipeline file {file} does not exist (looked in {root}); fix the path or create the file")
        out["pipeline"] = f"{(root / file).resolve()}:{func}"

    if "executor" in d:
        executor = text(("executor",), d["executor"], "executor")
        if executor not in ("local", "dask") and not re.match(r"^(dask|tcp|tls)://[^/\s]+:\d+$", executor):
            raise doc.fail(("executor",), f"executor {executor!r} must be local, dask (a cluster on this machine) or "
                                          "dask://host:port (a scheduler the agent can reach)")
        out["executor"] = executor

    data = section("data", {"source", "schema", "feedback"})
    if "source" in data:
        source = text(("data", "source"), data["source"], "data.source")
        if source == PREDICTIONS:
            out["feedback_only"] = True
            out["feedback"] = 30 * 86400.0
        else:
            from modelcycle.store.locations import is_object_url

            out["data_source"] = source if is_object_url(source) else (root / source).resolve()
    if "feedback" in data:
        value = data["feedback"]
        if value is True:
            out["feedback"] = 30 * 86400.0
        elif value is False or value is None:
            if out.get("feedback_only"):
                raise doc.fail(("data", "feedback"), "data.source: predictions trains on the labelled predictions: "
                                                     "feedback: cannot be off")
            out.pop("feedback", None)
        elif isinstance(value, (str, int, float)):
            out["feedback"] = duration(("data", "feedback"), value, 3660 * 86400.0)
        else:
            raise doc.fail(("data", "feedback"), "data.feedback is true, false or how far back to read labelled "
                                                 "predictions (e.g. 30d)")
    if "schema" in data:
        schema = (root / text(("data", "schema"), data["schema"], "data.schema")).resolve()
        if not schema.is_file():
            raise doc.fail(("data", "schema"), f"schema file {schema} does not exist; write one with `modelcycle data infer-schema`")
        out["schema"] = schema

    model = section("model", {"name", "target", "policy", "alias"})
    out["model"] = text(("model", "name"), model["name"], "model.name") if "name" in model else name
    if "target" in model:
        out["target"] = text(("model", "target"), model["target"], "model.target")
    if "alias" in model:
        out["alias"] = text(("model", "alias"), model["alias"], "model.alias")
    if "policy" in model:
        policy = model["policy"]
        if isinstance(policy, str):
            file = (root / policy).resolve()
            if not file.is_file():
                raise doc.fail(("model", "policy"), f"policy file {file} does not exist; fix the path or write the policy inline")
            policy = file
        elif not isinstance(policy, dict):
            raise doc.fail(("model", "policy"), "model.policy must be a file name or a mapping of rules")
        try:
            from modelcycle.evaluation import Policy

            rules = Policy.coerce(policy)
        except Exception as e:
            raise doc.fail(("model", "policy"), f"the policy is not valid: {e}") from None
        out["policy"] = policy
        if "target" not in out and "target" in rules.source:
            out["target"] = rules.target  # the policy names the label column

    serve = section("serve", {"model", "shadow", "url"})
    for key, attr in (("model", "serve_model"), ("shadow", "serve_shadow")):
        if key in serve:
            ref = text(("serve", key), serve[key], f"serve.{key}")
            if "@" not in ref and "/" not in ref:
                raise doc.fail(("serve", key), f"serve.{key} {ref!r} must name a model and an alias, e.g. {out['model']}@champion")
            out[attr] = ref
    if "url" in serve:
        url = text(("serve", "url"), serve["url"], "serve.url")
        if not url.startswith(("http://", "https://")):
            raise doc.fail(("serve", "url"), f"serve.url {url!r} must be an http:// URL of the running server")
        out["serve_url"] = url.rstrip("/")

    monitor = section("monitor", {"window", "drift", "performance", "alerts", "min_rows"})
    if "window" in monitor:
        seconds = duration(("monitor", "window"), monitor["window"], 366 * 86400.0)
        out["window"] = str(monitor["window"]) if isinstance(monitor["window"], str) else f"{int(seconds)}s"
    if "min_rows" in monitor:
        out["min_rows"] = int(number(("monitor", "min_rows"), monitor["min_rows"], 1))
    drift = monitor.get("drift") or {}
    if not isinstance(drift, dict) or set(drift) - {"method", "share"}:
        raise doc.fail(("monitor", "drift"), "monitor.drift takes method: (auto, psi, js, wasserstein, ks, chi2) and share: (0-1)")
    if "method" in drift:
        from modelcycle.data.drift import METHODS

        if drift["method"] not in METHODS:
            raise doc.fail(("monitor", "drift", "method"), f"unknown drift method {drift['method']!r}; choose one of {', '.join(METHODS)}")
        out["drift_method"] = drift["method"]
    if "share" in drift:
        out["drift_share"] = number(("monitor", "drift", "share"), drift["share"], 0.0, 1.0)
        if out["drift_share"] <= 0:
            raise doc.fail(("monitor", "drift", "share"), "monitor.drift.share must be above 0 (the share of columns that "
                                                          "must drift, e.g. 0.3)")
    perf = monitor.get("performance") or {}
    if not isinstance(perf, dict) or set(perf) - {"metric", "min", "max", "min_labelled"}:
        raise doc.fail(("monitor", "performance"), "monitor.performance takes metric:, min: or max:, and min_labelled:")
    if perf:
        from modelcycle.evaluation.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER

        metric = perf.get("metric")
        known = HIGHER_IS_BETTER | LOWER_IS_BETTER
        if metric not in known:
            raise doc.fail(("monitor", "performance", "metric") if "metric" in perf else ("monitor", "performance"),
                           f"unknown metric {metric!r}; choose one of {', '.join(sorted(known - {'latency_ms_per_row'}))}")
        lower = metric in LOWER_IS_BETTER
        if "min" not in perf and "max" not in perf:
            raise doc.fail(("monitor", "performance"), f"say when {metric} is too bad: " + (
                f"max: <the worst acceptable {metric}> (lower {metric} is better)" if lower else "min: 0.75"))
        out["performance_metric"] = metric
        if lower and "min" in perf:
            raise doc.fail(("monitor", "performance", "min"), f"lower {metric} is better, so the alert needs max: (the worst "
                                                              f"acceptable {metric}), not min:")
        if not lower and "max" in perf:
            raise doc.fail(("monitor", "performance", "max"), f"higher {metric} is better, so the alert needs min: (the worst "
                                                              f"acceptable {metric}), not max:")
        lo, hi = _METRIC_RANGE.get(metric, (None, None))
        if "min" in perf:
            out["performance_min"] = number(("monitor", "performance", "min"), perf["min"], lo, hi)
        if "max" in perf:
            out["performance_max"] = number(("monitor", "performance", "max"), perf["max"], lo, hi)
        if "min_labelled" in perf:
            out["min_labelled"] = int(number(("monitor", "performance", "min_labelled"), perf["min_labelled"], 1))
    alerts = monitor.get("alerts") or {}
    if not isinstance(alerts, dict) or set(alerts) - {"webhook", "file"}:
        raise doc.fail(("monitor", "alerts"), "monitor.alerts takes webhook: (an http:// URL) and file: (a path)")
    if "webhook" in alerts:
        hook = text(("monitor", "alerts", "webhook"), alerts["webhook"], "monitor.alerts.webhook")
        if not hook.startswith(("http://", "https://")):
            raise doc.fail(("monitor", "alerts", "webhook"), f"webhook {hook!r} must be an http:// or https:// URL")
        out["alert_webhook"] = hook
    if "file" in alerts:
        out["alert_file"] = (root / text(("monitor", "alerts", "file"), alerts["file"], "monitor.alerts.file")).resolve()

    triggers = d.get("triggers") or []
    if not isinstance(triggers, list):
        raise doc.fail(("triggers",), "triggers: must be a list, e.g.\n  - on: drift\n  - schedule: \"0 3 * * *\"")
    parsed = []
    for i, t in enumerate(triggers):
        at = ("triggers", i)
        line = doc.lines.get(at, 0)
        if isinstance(t, dict) and set(t) == {"schedule"}:
            from modelcycle.automation.cron import Cron

            try:
                Cron(str(t["schedule"]))
            except ValueError as e:
                raise doc.fail((*at, "schedule"), f"schedule {t['schedule']!r}: {e}") from None
            parsed.append(Trigger("schedule", str(t["schedule"]), line))
        elif isinstance(t, dict) and set(t) == {"on"}:
            if t["on"] not in TRIGGERS[:-1]:  # schedule is written `schedule: "<cron>"`, not `on:`
                raise doc.fail((*at, "on"), f"unknown trigger on: {t['on']!r}; choose new_data, drift or performance (or schedule: \"cron\")")
            if t["on"] == "new_data" and "data_source" not in out:
                raise doc.fail((*at, "on"), "on: new_data needs data: {source: folder} to watch (labelled predictions "
                                            "arriving are watched by the performance trigger)")
            if t["on"] == "performance" and "performance_metric" not in out:
                raise doc.fail((*at, "on"), "on: performance needs monitor: {performance: {metric: roc_auc, min: 0.75}}")
            parsed.append(Trigger(t["on"], None, line))
        else:
            raise doc.fail(at, f"a trigger is either on: new_data|drift|performance or schedule: \"<cron>\", not {t!r}")
    out["triggers"] = tuple(parsed)
    if parsed and "pipeline" not in out:
        raise doc.fail(("triggers",), "triggers retrain the model, so the spec needs pipeline: file.py:function")
    if parsed and "target" not in out:
        raise doc.fail(("model",), "the controller validates candidates on labelled data: add model: {target: <label column>} "
                                   "(or target: in the policy)")

    agent = section("agent", {"interval", "retry"})
    if "interval" in agent:
        out["interval"] = duration(("agent", "interval"), agent["interval"], 86400.0)
    if "retry" in agent:
        retry = agent["retry"]
        keys = {"min_new_rows", "backoff", "max_backoff"}
        if not isinstance(retry, dict) or set(retry) - keys:
            raise doc.fail(("agent", "retry"), "agent.retry takes min_new_rows: (labelled rows), backoff: and max_backoff: "
                                               "(durations such as 10m and 6h)")
        values: dict[str, Any] = {}
        if "min_new_rows" in retry:
            values["min_new_rows"] = int(number(("agent", "retry", "min_new_rows"), retry["min_new_rows"], 1))
        for key in ("backoff", "max_backoff"):
            if key in retry:
                values[key] = duration(("agent", "retry", key), retry[key], 30 * 86400.0)
        made = Retry(**values)
        if made.max_backoff < made.backoff:
            raise doc.fail(("agent", "retry", "max_backoff"), f"agent.retry.max_backoff ({made.max_backoff:g} s) must be at "
                                                              f"least backoff ({made.backoff:g} s)")
        out["retry"] = made
    if "window" in out and any(t.kind in ("drift", "performance") for t in parsed):
        from modelcycle.monitoring import parse_window

        every = out.get("interval", 60.0)
        if parse_window(out["window"]) < every:
            raise doc.fail(("agent", "interval") if "interval" in agent else ("monitor", "window"),
                           f"monitoring windows of {out['window']} are judged every {every:g} s, so most would never be "
                           f"looked at: make agent.interval at most the window (e.g. agent: {{interval: {out['window']}}})")
    if out.get("feedback") is not None and out.get("target"):
        from modelcycle.store.predictions import LOG_COLUMNS

        if out["target"] in LOG_COLUMNS:
            raise doc.fail(("model", "target") if "target" in model else ("model",),
                           f"the target {out['target']!r} is the name of a column the labelled predictions already have "
                           f"({', '.join(LOG_COLUMNS)}); name the label column otherwise")
    _check_task(doc, out)
    params = d.get("params") or {}
    if not isinstance(params, Mapping):
        raise doc.fail(("params",), "params: must map the pipeline's parameters to values")
    out["params"] = dict(params)
    return ProjectSpec(**out)


def _check_task(doc: _Lines, out: dict[str, Any]) -> None:
    """A metric that does not fit the target: ``roc_auc`` on a numeric target with fractional values, ``rmse`` on text.

    The target is read from the newest file of the data source (its first 10,000 rows); without data nothing is said.
    """
    target, source = out.get("target"), out.get("data_source")
    metrics: list[tuple[tuple[Any, ...], str]] = []
    if out.get("performance_metric"):
        metrics.append((("monitor", "performance", "metric"), out["performance_metric"]))
    policy = out.get("policy")
    if policy is not None:
        from modelcycle.evaluation import Policy

        rules = Policy.coerce(policy)
        metrics += [(("model", "policy"), m) for m in rules.thresholds]
        if rules.improvement:
            metrics.append((("model", "policy"), rules.improvement["metric"]))
    if not target or source is None or not metrics:
        return
    kind = _target_kind(source, target)
    if kind is None:
        return
    if kind.startswith("missing:"):
        raise doc.fail(("model", "target"), f"the target {target!r} is not a column of {kind[8:]}; its columns: "
                                            f"{', '.join(_columns(Path(kind[8:]))[:20])}")
    for at, metric in metrics:
        if kind in ("regression", "many") and metric in CLASSIFICATION_METRICS:
            what = "continuous numbers" if kind == "regression" else f"more than {MANY_CLASSES} distinct numbers"
            raise doc.fail(at, f"{metric} measures a classifier, but {target!r} in {source} holds {what} "
                               f"(a regression target): use rmse, mae, mape or r2")
        if kind == "classification" and metric in REGRESSION_METRICS:
            raise doc.fail(at, f"{metric} measures a regression, but {target!r} in {source} holds classes: use roc_auc, "
                               f"accuracy, f1, precision, recall or log_loss")


def _target_kind(source: Path | str, target: str) -> str | None:
    """``classification`` (text or booleans), ``regression`` (fractional numbers), ``many`` (whole numbers with more than
    ``MANY_CLASSES`` distinct values), ``missing:<file>`` (no such column) or None (cannot tell: a few whole numbers)."""
    import numpy as np

    from modelcycle.store.locations import data_files, open_file

    try:
        files = data_files(source)
    except Exception:  # an unreachable store is the pipeline's to report
        return None
    if not files:
        return None
    newest = files[-1][0]
    try:
        if newest.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(open_file(newest))
            if target not in pf.schema_arrow.names:
                return f"missing:{newest}"
            column = next(pf.iter_batches(batch_size=10_000, columns=[target])).column(0).to_pandas()
        else:
            import pandas as pd

            with open_file(newest) as f:
                frame = pd.read_csv(f, nrows=10_000, usecols=lambda c: c == target)
            if target not in frame.columns:
                return f"missing:{newest}"
            column = frame[target]
    except Exception:  # an unreadable file is the pipeline's to report, with its own message
        return None
    from pandas.api import types as t

    if t.is_bool_dtype(column.dtype) or not t.is_numeric_dtype(column.dtype):
        return "classification"
    values = column.dropna().to_numpy(dtype=float)
    if not len(values):
        return None
    if not np.all(values == np.round(values)):
        return "regression"
    return "many" if len(np.unique(values)) > MANY_CLASSES else None  # a few whole numbers: classes or counts


def _columns(path: Path) -> list[str]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        import pandas as pd

        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except Exception:
        return []
