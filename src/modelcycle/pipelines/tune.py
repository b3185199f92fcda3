"""Hyper-parameter tuning on Optuna: every trial a child run, the best parameters logged on the parent.

    result = mc.tune(objective, {"C": mc.loguniform(1e-3, 1e2), "model": mc.choice(["rf", "lr"])}, n_trials=50)

``objective(params)`` returns the value to optimise, or a dict of metrics with ``metric=`` naming
the one to optimise. An objective that takes a second argument gets a ``trial`` with
``report(value, step)`` and ``should_prune()``; raise ``mc.TrialPruned()`` to stop a trial early.
"""

from __future__ import annotations

import inspect
import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelcycle._deps import require
from modelcycle.entities import RunStatus
from modelcycle.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from modelcycle.tracking.client import Client

__all__ = ["Choice", "Distribution", "TrialPruned", "TuneResult", "choice", "intrange", "loguniform", "tune", "uniform"]


class TrialPruned(Exception):
    """Raise inside an objective to stop an unpromising trial; it is recorded as pruned."""


@dataclass(frozen=True)
class Distribution:
    kind: str
    low: float
    high: float
    step: float | None = None

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "loguniform":
            return trial.suggest_float(name, self.low, self.high, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(name, self.low, self.high)
        return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1))


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))


def loguniform(low: float, high: float) -> Distribution:
    """A float between ``low`` and ``high``, sampled on a log scale (learning rates, regularisation).

    Example:
        >>> loguniform(1e-3, 1e2).kind
        'loguniform'
    """
    if not (0 < low < high):
        raise InvalidInputError(f"loguniform needs 0 < low < high, got {low}, {high}")
    return Distribution("loguniform", float(low), float(high))


def uniform(low: float, high: float) -> Distribution:
    if not low < high:
        raise InvalidInputError(f"uniform needs low < high, got {low}, {high}")
    return Distribution("uniform", float(low), float(high))


def intrange(low: int, high: int, step: int = 1) -> Distribution:
    """A whole number from ``low`` to ``high`` inclusive."""
    if not (isinstance(low, int) and isinstance(high, int)) or low > high or step < 1:
        raise InvalidInputError(f"intrange needs whole numbers low ≤ high and step ≥ 1, got {low}, {high}, {step}")
    return Distribution("int", low, high, step)


def choice(options: list[Any] | tuple[Any, ...]) -> Choice:
    """One of ``options`` (strings, numbers, booleans or None)."""
    options = tuple(options)
    if not options:
        raise InvalidInputError("choice needs at least one option")
    bad = [o for o in options if not (o is None or isinstance(o, (str, int, float, bool)))]
    if bad:
        raise InvalidInputError(f"choice options must be strings, numbers, booleans or None; got {bad[0]!r}")
    return Choice(options)


class _Trial:
    """What a two-argument objective receives."""

    def __init__(self, trial: Any, run: Any):
        self._trial = trial
        self.run = run
        self.number = trial.number

    def report(self, value: float, step: int) -> None:
        self._trial.report(float(value), step)
        self.run.log_metric("intermediate", float(value), step=step)

    def should_prune(self) -> bool:
        return bool(self._trial.should_prune())


@dataclass
class TuneResult:
    """The best trial, and every trial as a table (number, state, value, duration, run id, params)."""

    best_params: dict[str, Any]
    best_value: float
    best_run_id: str | None
    run_id: str | None
    trials: pd.DataFrame
    study: Any

    def __repr__(self) -> str:
        return f"<TuneResult best={self.best_value:.6g} {self.best_params} over {len(self.trials)} trials>"


def _optuna() -> Any:
    optuna = require("optuna", "tuning")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _sampler(optuna: Any, sampler: str | Any, seed: int | None) -> Any:
    if not isinstance(sampler, str):
        return sampler
    table = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed), "random": lambda: optuna.samplers.RandomSampler(seed=seed),
             "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed), "grid": None}
    if sampler not in table or table[sampler] is None:
        raise InvalidInputError(f"unknown sampler {sampler!r}; use 'tpe', 'random' or 'cmaes' (or an Optuna sampler object)")
    return table[sampler]()


def _pruner(optuna: Any, pruner: str | Any | None) -> Any:
    if pruner is None or pruner == "none":
        return optuna.pruners.NopPruner()
    if not isinstance(pruner, str):
        return pruner
    table = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
             "successive_halving": optuna.pruners.SuccessiveHalvingPruner}
    if pruner not in table:
        raise InvalidInputError(f"unknown pruner {pruner!r}; use 'median', 'hyperband', 'successive_halving' or None")
    return table[pruner]()


def _value(result: Any, metric: str | None) -> tuple[float, dict[str, float]]:
    if isinstance(result, Mapping):
        if metric is None:
            raise InvalidInputError(f"the objective returned metrics {sorted(result)}; name the one to optimise with metric=")
        if metric not in result:
            raise InvalidInputError(f"the objective's metrics {sorted(result)} do not include {metric!r}")
        return float(result[metric]), {str(k): float(v) for k, v in result.items()}
    try:
        value = float(result)
    except (TypeError, ValueError):
        raise InvalidInputError(f"the objective must return a number or a dict of metrics, not {type(result).__name__}") from None
    return value, {metric or "value": value}


def tune(
    objective: Callable[..., Any],
    space: Mapping[str, Any],
    n_trials: int = 50,
    direction: str = "maximize",
    sampler: str | Any = "tpe",
    pruner: str | Any | None = "median",
    timeout: float | None = None,
    executor: str | None = None,
    metric: str | None = None,
    seed: int | None = None,
    experiment: str | None = None,
    client: Client | None = None,
) -> TuneResult:
    """Search ``space`` for the parameters that optimise ``objective``; each trial is a child run.

    Args:
        objective: ``objective(params)`` (or ``objective(params, trial)`` to report and prune).
        space: parameter name → ``loguniform``, ``uniform``, ``intrange``, ``choice``, or a fixed value.
        direction: "maximize" or "minimize".
        timeout: stop starting trials after this many seconds.
        executor: None runs trials here one after another; "dask" or "dask://host:port" runs them in
            parallel on Dask workers (pruning then does not apply: trials run to the end).
        metric: the key to optimise when the objective returns a dict.

    Returns:
        TuneResult with ``best_params``, ``best_value``, ``best_run_id`` and a ``trials`` table.
    """
    import pandas as pd

    from modelcycle.tracking.fluent import get_client

    optuna = _optuna()
    if direction not in ("maximize", "minimize"):
        raise InvalidInputError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
    if not isinstance(n_trials, int) or n_trials < 1:
        raise InvalidInputError(f"n_trials must be a whole number ≥ 1, not {n_trials!r}")
    if not isinstance(space, Mapping) or not space:
        raise InvalidInputError("space must be a non-empty dict of parameter name → distribution")
    client = client or get_client()
    takes_trial = len(inspect.signature(objective).parameters) >= 2
    study = optuna.create_study(direction=direction, sampler=_sampler(optuna, sampler, seed), pruner=_pruner(optuna, pruner))
    active = client.active_run()
    own_parent = active is None or active.implicit  # a run that logging outside a run started is not a parent
    parent = client.start_run(experiment=experiment, name="tune") if own_parent else active
    assert parent is not None
    parent.log_params({"tune.n_trials": n_trials, "tune.direction": direction, "tune.sampler": str(sampler),
                       "tune.pruner": str(pruner), **({"tune.metric": metric} if metric else {})})
    rows: list[dict[str, Any]] = []
    started = time.monotonic()

    def params_of(trial: Any) -> dict[str, Any]:
        return {name: (dist.suggest(trial, name) if isinstance(dist, (Distribution, Choice)) else dist) for name, dist in space.items()}

    try:
        if executor in (None, "", "local"):
            for _ in range(n_trials):
                if timeout is not None and time.monotonic() - started > timeout:
                    break
                trial = study.ask()
                params = params_of(trial)
                run = client.start_run(experiment=parent.experiment, name=f"trial-{trial.number}", parent=parent, activate=False,
                                       params=params, tags={"modelcycle.kind": "trial"})
                t0 = time.perf_counter()
                state, value, error = "complete", math.nan, None
                with client.activated(run):
                    try:
                        out = objective(params, _Trial(trial, run)) if takes_trial else objective(params)
                        value, metrics = _value(out, metric)
                        run.log_metrics(metrics)
                    except TrialPruned:
                        state = "pruned"
                    except Exception as e:
                        if type(e).__name__ == "TrialPruned":  # optuna's own
                            state = "pruned"
                        else:
                            state, error = "failed", f"{type(e).__name__}: {e}"
                            if isinstance(e, InvalidInputError):
                                raise
                _finish(optuna, study, trial, run, state, value, error)
                rows.append({"number": trial.number, "state": state, "value": value, "duration": time.perf_counter() - t0,
                             "run_id": run.id, **{f"params.{k}": v for k, v in params.items()}})
        else:
            rows = _tune_dask(optuna, study, objective, takes_trial, params_of, n_trials, timeout, executor, metric, client, parent)
    except BaseException:
        if own_parent:
            parent.end(RunStatus.FAILED, error=traceback.format_exc())
        raise
    trials = pd.DataFrame(rows)
    complete = trials[trials["state"] == "complete"] if len(trials) else trials
    if complete.empty:
        if own_parent:
            parent.end(RunStatus.FAILED, error="no trial completed")
        raise InvalidInputError(f"no trial of {len(trials)} completed; the first error: "
                                + next((str(r.get("error")) for r in rows if r.get("error")), "every trial was pruned"))
    best = study.best_trial
    best_row = trials[trials["number"] == best.number].iloc[0]
    best_params = {**{k: v for k, v in space.items() if not isinstance(v, (Distribution, Choice))}, **best.params}
    parent.log_params({f"best.{k}": v for k, v in best_params.items()})
    parent.log_metric("best_value", float(best.value))
    parent.set_tag("best_trial_run", str(best_row["run_id"]))
    if own_parent:
        parent.end(RunStatus.FINISHED)
    client.flush()
    return TuneResult(best_params, float(best.value), str(best_row["run_id"]), parent.id, trials, study)


def _finish(optuna: Any, study: Any, trial: Any, run: Any, state: str, value: float, error: str | None) -> None:
    if state == "complete":
        study.tell(trial, value)
        run.end(RunStatus.FINISHED)
    elif state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        run.set_tag("modelcycle.trial_state", "pruned")
        run.end(RunStatus.KILLED, error="pruned")
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        run.end(RunStatus.FAILED, error=error)


def _remote_trial(settings: dict[str, Any], objective: Callable[..., Any], params: dict[str, Any], run_id: str,
                  metric: str | None) -> dict[str, Any]:
    from modelcycle.pipelines.executors import worker_client
    from modelcycle.tracking import fluent

    client = worker_client(settings)
    fluent.set_client(client)
    run = client.resume_run(run_id)
    t0 = time.perf_counter()
    try:
        with client.activated(run):
            value, metrics = _value(objective(params), metric)
            run.log_metrics(metrics)
        client.flush()
        return {"state": "complete", "value": value, "duration": time.perf_counter() - t0}
    except TrialPruned:
        return {"state": "pruned", "value": math.nan, "duration": time.perf_counter() - t0}
    except Exception as e:
        client.flush()
        return {"state": "failed", "value": math.nan, "duration": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"}


def _tune_dask(optuna: Any, study: Any, objective: Callable[..., Any], takes_trial: bool, params_of: Callable[[Any], dict],
               n_trials: int, timeout: float | None, executor: str, metric: str | None, client: Client, parent: Any) -> list[dict]:
    from distributed import as_completed

    from modelcycle.pipelines.executors import dask_client, worker_settings

    if takes_trial:
        raise InvalidInputError("an objective that reports to a trial (two arguments) runs only locally; "
                                "on Dask, trials run to the end: give objective(params)")
    dask = dask_client(None if executor == "dask" else executor)
    settings = worker_settings(client.settings, remote=executor != "dask")
    width = max(1, sum(dask.nthreads().values()))
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    pending: dict[Any, tuple[Any, Any, dict[str, Any]]] = {}
    asked = 0
    try:
        def launch() -> None:
            nonlocal asked
            trial = study.ask()
            asked += 1
            params = params_of(trial)
            run = client.start_run(experiment=parent.experiment, name=f"trial-{trial.number}", parent=parent, activate=False,
                                   params=params, tags={"modelcycle.kind": "trial"})
            client.flush()
            future = dask.submit(_remote_trial, settings, objective, params, run.id, metric, pure=False)
            pending[future] = (trial, run, params)
            queue.add(future)

        queue = as_completed()
        while asked < min(width, n_trials):
            launch()
        for future in queue:
            trial, run, params = pending.pop(future)
            out = future.result()
            _finish(optuna, study, trial, run, out["state"], out["value"], out.get("error"))
            rows.append({"number": trial.number, "state": out["state"], "value": out["value"], "duration": out["duration"],
                         "run_id": run.id, "error": out.get("error"), **{f"params.{k}": v for k, v in params.items()}})
            if asked < n_trials and (timeout is None or time.monotonic() - started < timeout):
                launch()
    finally:
        dask.close()
    return rows
