"""Who may make which call on the team server.

A user holds roles on experiments and registered models, by name or on all of them (``*``): ``read`` sees them,
``write`` adds to them (runs and their values, model versions, verdicts, monitoring windows, alerts, cycles), ``manage``
also moves aliases (promotion, rollback) and deletes runs. An admin may do everything, including garbage collection.
Continuous-training cycles and the step cache belong to the experiment the agent or the pipeline trains in.

Every call of ``store.rpc.CALLS`` has a rule here (a test checks it): the rule checks the arguments before the call,
rewrites what the server decides itself (which user made a write, when a run counts as lost), and filters listings
down to what the user may read. The server's own token names no one: what its holder says about who acted is kept.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from modelcycle._hashing import hash_json
from modelcycle.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from modelcycle.registry.uri import check_model_name
from modelcycle.store.artifacts.base import safe_artifact_path
from modelcycle.store.metadata.base import RunPage, WriteBatch

__all__ = ["LEVEL", "RULES", "USER_TAG", "Answer", "Gate", "Principal", "sanitize"]

LEVEL = {"read": 1, "write": 2, "manage": 3}
USER_TAG = "modelcycle.user"  # set by the server on every run it creates: who created it


@dataclass(frozen=True)
class Principal:
    """An authenticated user: its name, whether it is an admin, and its roles by ``(kind, name)``.

    Example:
        >>> p = Principal("ana", grants={("experiment", "churn"): "write", ("model", "*"): "read"})
        >>> p.can("experiment", "churn", "read"), p.can("model", "fraud", "write")
        (True, False)
    """

    name: str
    admin: bool = False
    grants: Mapping[tuple[str, str], str] = field(default_factory=dict)
    person: bool = True  # a user's token; False for the server's own token, which names no one

    def level(self, kind: str, name: str | None) -> int:
        if self.admin:
            return LEVEL["manage"]
        own = LEVEL.get(self.grants.get((kind, name), ""), 0) if name is not None else 0
        return max(own, LEVEL.get(self.grants.get((kind, "*"), ""), 0))

    def can(self, kind: str, name: str | None, role: str) -> bool:
        return self.level(kind, name) >= LEVEL[role]

    def require(self, kind: str, name: str | None, role: str) -> None:
        if not self.can(kind, name, role):
            raise PermissionDeniedError(
                f"user {self.name!r} may not {role} {kind} {name!r}; an admin can allow it with "
                f"`modelcycle server users grant {self.name} {kind}:{name} {role}`")

    def anything(self) -> bool:
        """Whether the user may read at least something (blobs are named by their hash, so reading one needs some
        role, not one on a particular record)."""
        return self.admin or bool(self.grants)

    def writes_anything(self) -> bool:
        return self.admin or any(LEVEL.get(r, 0) >= LEVEL["write"] for r in self.grants.values())

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise PermissionDeniedError(f"only an admin may {what}; user {self.name!r} is not one")


class Answer(Exception):
    """Raised by a rule that answers the call itself (a listing of nothing the user may read)."""

    def __init__(self, value: Any) -> None:
        super().__init__("answered by the access rule")
        self.value = value


class Gate:
    """The rules applied to one server's store; caches what never changes (a run's experiment, an experiment's name).

    ``check(call, principal, values)`` raises PermissionDeniedError or Answer, may rewrite ``values`` in place, and
    returns the filter the answer goes through (or None).
    """

    def __init__(self, store: Any, heartbeat_timeout: float) -> None:
        self.store = store
        self.heartbeat_timeout = heartbeat_timeout
        self._run_experiment: dict[str, str] = {}
        self._experiment_name: dict[int, str] = {}

    def check(self, call: str, p: Principal, values: dict[str, Any]) -> Callable[[Any], Any] | None:
        return RULES[call](self, p, values)

    # --- what a record belongs to -----------------------------------------------------------------
    def experiments_of(self, run_ids: Any) -> dict[str, str]:
        ids = [i for i in dict.fromkeys(run_ids) if i not in self._run_experiment]
        if ids:
            if len(self._run_experiment) > 200_000:
                self._run_experiment.clear()
            self._run_experiment.update(self.store.run_experiments(ids))
        return {i: self._run_experiment[i] for i in run_ids if i in self._run_experiment}

    def experiment_name(self, experiment_id: int) -> str | None:
        if experiment_id not in self._experiment_name:
            self._experiment_name = self.store.experiment_names()
        return self._experiment_name.get(experiment_id)

    def runs(self, p: Principal, run_ids: Any, role: str) -> None:
        """``role`` on the experiment of each run. Runs are named by their whole id (a client resolves a prefix with
        ``resolve_run_id`` first); a run the user may not read is answered as one that does not exist."""
        ids = list(run_ids)
        found = self.experiments_of(ids)
        for run_id in ids:
            exp = found.get(run_id)
            if exp is None and _RUN_ID.fullmatch(run_id):
                continue  # a whole id not stored yet (its run may still be in the client's buffer): the store answers
            if exp is None or not p.can("experiment", exp, "read"):
                raise NotFoundError(f"run {str(run_id)[:40]!r} does not exist")
        for exp in set(found.values()):
            p.require("experiment", exp, role)

    def readable_experiments(self, p: Principal) -> list[str]:
        return [e.name for e in self.store.list_experiments() if p.can("experiment", e.name, "read")]


_DIGEST = re.compile(r"[0-9a-f]{64}")  # matched whole (fullmatch)
_RUN_ID = re.compile(r"[0-9a-f]{32}")


def sanitize(call: str, values: dict[str, Any]) -> None:
    """What the server checks of every request, whoever makes it: artifact names another client will download are
    relative paths that stay inside a folder, and artifacts name blobs by their sha256 (a client checks both again)."""
    if call in ("write", "create_run"):
        batch = values["batch"] if call == "write" else WriteBatch(runs=[values["run"]])
        for row in batch.artifacts:
            _normal(row[1])
            if not _DIGEST.fullmatch(row[2]):
                raise InvalidInputError(f"artifact {row[1]!r} names blob {row[2][:80]!r}, which is not a sha256 digest")
        for run in batch.runs:  # an environment is kept under the hash of its contents, so no one can plant another's
            if run.environment is not None and hash_json(run.environment) != run.context.environment_id:
                raise InvalidInputError(f"run {run.id[:40]!r}: its environment does not hash to its environment id")
    elif call == "create_model_version":
        _normal(values["artifact_path"])
        check_model_name(values["name"])  # the names the registry (and `models:/` URIs) can address, nothing else
    if call in ("search_page", "search_runs"):
        limit = values.get("limit")
        if limit is None or limit > MAX_PAGE:
            raise InvalidInputError(f"a search through the server returns at most {MAX_PAGE:,} runs per call (limit "
                                    f"{'None' if limit is None else f'{limit:,}'}); ask for the next ones with offset")
    if call in ("search_page", "search_runs", "count_runs") and len(values.get("experiments") or ()) > MAX_EXPERIMENTS:
        raise InvalidInputError(f"a search names at most {MAX_EXPERIMENTS:,} experiments")


MAX_PAGE = 10_000  # runs per search call (a client pages through more: HttpMetadataStore does)
MAX_EXPERIMENTS = 1_000


def _normal(name: str) -> None:
    if safe_artifact_path(name) != name:
        raise InvalidInputError(f"artifact name {name!r} is not in its normal form ({safe_artifact_path(name)!r})")


Rule = Callable[[Gate, Principal, dict[str, Any]], "Callable[[Any], Any] | None"]


def _named(kind: str, role: str, arg: str = "name") -> Rule:
    """``role`` on the experiment or model that argument ``arg`` names."""

    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> None:
        p.require(kind, v[arg], role)

    return rule


def _runs(role: str, arg: str = "run_ids") -> Rule:
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> None:
        g.runs(p, v[arg], role)

    return rule


def _run(role: str, arg: str = "run_id") -> Rule:
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> None:
        g.runs(p, [v[arg]], role)

    return rule


def _delete_run(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    g.runs(p, [v["run_id"]], "manage")
    g.runs(p, g.store.delete_run(v["run_id"], dry_run=True), "manage")  # its descendants, wherever they are


def _heartbeat(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    """Runs not stored yet (still in the client's buffer) are left out rather than refused."""
    ids = list(v["run_ids"])  # an iterable: read once
    known = g.experiments_of(ids)
    v["run_ids"] = [r for r in ids if r in known]
    g.runs(p, v["run_ids"], "write")


def _histories(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    """A comparison's histories: a run that does not exist, or that the user may not read, has no entry, as a run without
    the metric has none (a page of runs some of which went away, or are another team's, still draws the others)."""
    ids = list(v["run_ids"])
    found = g.experiments_of(ids)
    v["run_ids"] = [r for r in ids if r in found and p.can("experiment", found[r], "read")]


def _admin(what: str) -> Rule:
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> None:
        p.require_admin(what)

    return rule


def _stamp(run: Any, p: Principal) -> Any:
    tags = {k: val for k, val in run.tags.items() if k != USER_TAG}
    if p.person:
        tags[USER_TAG] = p.name
    return replace(run, tags=tags)


def _write(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    batch: WriteBatch = v["batch"]
    new = {}
    for run in batch.runs:
        exp = g.experiment_name(run.experiment_id)
        p.require("experiment", exp if exp is not None else f"#{run.experiment_id}", "write")
        new[run.id] = exp
    others = {row[0] for rows in (batch.metrics, batch.params, batch.tags, batch.artifacts, batch.inputs, batch.updates)
              for row in rows} - set(new)
    g.runs(p, others, "write")
    v["batch"] = replace(batch, runs=[_stamp(r, p) for r in batch.runs],
                         tags=[t for t in batch.tags if t[1] != USER_TAG])  # who made a run is the server's to say


def _create_run(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    exp = g.experiment_name(v["run"].experiment_id)
    p.require("experiment", exp if exp is not None else f"#{v['run'].experiment_id}", "write")
    v["run"] = _stamp(v["run"], p)


def _mark_lost(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    """Every client asks before it reads (a reader too); what counts as lost is the server's rule, not the caller's."""
    if not p.anything():
        raise Answer(0)
    v["older_than"] = min(v["older_than"], time.time() - g.heartbeat_timeout)


def _resolve(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any]:
    def check(run_id: str) -> str:
        g.runs(p, [run_id], "read")
        return run_id

    return check


def _search(empty: Any) -> Rule:
    """The experiments a search may read: those named (each needs read), else every one the user may read; ``empty``
    is the answer when that is none."""
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> None:
        names = v.get("experiments")
        if names:
            for n in names:
                p.require("experiment", n, "read")
            return
        if p.can("experiment", "*", "read"):
            return
        readable = g.readable_experiments(p)
        if not readable:  # none named means all: all the user may read, which is none
            raise Answer(empty)
        v["experiments"] = readable

    return rule


def _list_experiments(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any]:
    return lambda exps: [e for e in exps if p.can("experiment", e.name, "read")]


def _anyone(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    if not p.anything():
        raise PermissionDeniedError(f"user {p.name!r} has no role on anything yet; an admin can grant one")


def _create_version(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    p.require("model", v["name"], "write")
    g.runs(p, [v["run_id"]], "read")
    if p.person:
        v["created_by"], v["created_at"] = p.name, time.time()


def _move_alias(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    p.require("model", v["name"], "manage")
    if not p.person:
        return
    v["actor"], v["at"] = p.name, time.time()
    if v.get("verdict_id") is not None:
        verdicts = {x.id: x for x in g.store.list_verdicts(v["name"], v["to_version"])}
        verdict = verdicts.get(v["verdict_id"])
        if verdict is None:
            raise InvalidInputError(f"{v['verdict_id']!r} is not a verdict of {v['name']}/{v['to_version']}")
        if not verdict.passed:
            v["forced"] = True  # promoted past a failing verdict: recorded as forced, whatever the client says
    elif v.get("action") == "promote":
        v["forced"] = True  # a promotion with no verdict at all


def _save_verdict(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    p.require("model", v["name"], "write")
    if v.get("run_id") is not None:
        g.runs(p, [v["run_id"]], "read")
    if p.person:  # the newest verdict is the one a promotion goes by: its time is the server's
        v["created_at"] = time.time()
        v["data"] = {**v["data"], "recorded_by": p.name}


def _uncut(v: dict[str, Any]) -> int | None:
    """A listing is filtered before it is cut to the caller's limit: asked for in full, cut here."""
    limit = v.get("limit")
    if "limit" in v:
        v["limit"] = None if limit is None else max(limit, 0) + 100_000
    return limit


def _models_filter(key: str) -> Rule:
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any]:
        limit = _uncut(v)

        def keep(items: list[Any]) -> list[Any]:
            kept = [i for i in items if p.can("model", i[key] if isinstance(i, dict) else getattr(i, key), "read")]
            return kept if limit is None else kept[:limit]

        return keep

    return rule


def _alert_raise(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    p.require("model", str(v["alert"].get("model")), "write")


def _alert_by_id(role: str) -> Rule:
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> None:
        alert = g.store.alert_get(v["alert_id"])
        if alert is not None:
            p.require("model", alert.model, role)

    return rule


def _alert_get(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any]:
    def check(alert: Any) -> Any:
        if alert is not None:
            p.require("model", alert.model, "read")
        return alert

    return check


def _listing(kind: str, arg: str, attr: str) -> Rule:
    """A listing: of one experiment or model when ``arg`` names it (then ``read`` on it), else of all, filtered."""

    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any] | None:
        if v.get(arg) is not None:
            p.require(kind, v[arg], "read")
            return None
        limit = _uncut(v)

        def keep(items: list[Any]) -> list[Any]:
            kept = [i for i in items if p.can(kind, getattr(i, attr), "read")]
            return kept if limit is None else kept[:limit]

        return keep

    return rule


def _cycle_new(g: Gate, p: Principal, v: dict[str, Any]) -> None:
    p.require("experiment", v["cycle"].project, "write")
    if v["cycle"].model is not None:  # a cycle names the model it retrains: only who may write that model says so
        p.require("model", v["cycle"].model, "write")


def _cycle_by_id(role: str) -> Rule:
    def rule(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any] | None:
        if role == "read":
            def check(cycle: Any) -> Any:
                if cycle is not None:
                    p.require("experiment", cycle.project, "read")
                return cycle

            return check
        cycle = g.store.cycle_get(v["cycle_id"])
        if cycle is not None:
            p.require("experiment", cycle.project, role)
            fields = v.get("fields") or {}
            model = fields.get("model") or cycle.model
            if model is not None and set(fields) & {"model", "version", "verdict_id", "alias_event_id"}:
                p.require("model", model, "write")  # linking a cycle to a model's versions and moves: that model's writers
        return None

    return rule


def _cache_lookup(g: Gate, p: Principal, v: dict[str, Any]) -> Callable[[Any], Any]:
    def keep(found: Any) -> Any:
        hit, last = found
        # a step's output is reused only from experiments the user may write to: whoever may write there could
        # have made it; a cached entry from elsewhere could hold anyone's output under the step's key
        made = g.experiments_of([x["run_id"] for x in (hit, last) if x is not None])
        ok = [x if x is not None and p.can("experiment", made.get(x["run_id"]), "write") else None for x in (hit, last)]
        return tuple(ok)

    return keep


RULES: dict[str, Rule] = {
    "get_or_create_experiment": _named("experiment", "write"),
    "get_experiment": _named("experiment", "read"),
    "list_experiments": _list_experiments,
    "create_run": _create_run,
    "write": _write,
    "heartbeat": _heartbeat,
    "mark_lost": _mark_lost,
    "get_run": _run("read"),
    "resolve_run_id": _resolve,
    "search_runs": _search([]),
    "search_page": _search(RunPage.of([])),
    "count_runs": _search(0),
    "run_keys": _search({"params": [], "metrics": [], "tags": []}),
    "get_metric_history": _run("read"),
    "metric_histories": _histories,
    "metric_keys": _run("read"),
    "artifact_clash": _run("read"),
    "get_environment": _anyone,
    "delete_run": _delete_run,
    "referenced_digests": _admin("list every stored blob"),
    "create_model_version": _create_version,
    "set_model_version_tags": _named("model", "write"),
    "get_model_version": _named("model", "read"),
    "search_model_versions": _models_filter("name"),
    "list_registered_models": _models_filter("name"),
    "get_alias": _named("model", "read"),
    "get_aliases": _named("model", "read"),
    "move_alias": _move_alias,
    "alias_events": _named("model", "read"),
    "save_verdict": _save_verdict,
    "list_verdicts": _named("model", "read"),
    "window_get": _named("model", "read", "model"),
    "window_list": _named("model", "read", "model"),
    "window_put": _named("model", "write", "model"),
    "alert_firing": _named("model", "read", "model"),
    "alert_raise": _alert_raise,
    "alert_resolve": _named("model", "write", "model"),
    "alert_delivery": _alert_by_id("write"),
    "alert_list": _listing("model", "model", "model"),
    "alert_get": _alert_get,
    "cycle_claim_new": _cycle_new,
    "cycle_claim_stale": _named("experiment", "write", "project"),
    "cycle_update": _cycle_by_id("write"),
    "cycle_get": _cycle_by_id("read"),
    "cycle_list": _listing("experiment", "project", "project"),
    "cache_put": _run("write"),
    "cache_lookup": _cache_lookup,
}
