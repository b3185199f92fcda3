"""The controller that closes the loop: triggers → pipeline run → candidate version → verdict → alias move → served.

Each trigger (new data, a drift or performance alert, a schedule tick) has a key; a cycle is
inserted under that key, so a trigger runs at most one cycle however many agents see it. A cycle
records each step as it finishes (``training`` → ``validating`` → ``promoting`` → ``verifying`` →
``done``, or ``rejected``/``rolled_back``/``failed``) and is worked on only by the agent that holds
its lease. An agent killed mid-cycle loses the lease; the next agent to start takes the cycle over
and resumes it from the last recorded step — re-running the pipeline costs little, its finished
steps come from the cache — and looks up what was done before acting again: the candidate by its
``cycle`` tag, the verdict by version, the promotion in the alias log. So a trigger never promotes twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelcycle.automation.spec import ProjectSpec
from modelcycle.errors import InvalidInputError, ModelcycleError

__all__ = ["Agent", "Hit", "data_fingerprint"]

log = logging.getLogger("modelcycle.agent")

FINISHED = ("done", "rejected", "rolled_back", "failed", "merged")


@dataclass
class Hit:
    """A trigger that fired: its kind, its key (one cycle per key) and what it saw."""

    kind: str
    key: str
    detail: dict[str, Any] = field(default_factory=dict)
    alert_id: str | None = None


class LeaseLost(ModelcycleError):
    """Another agent took this cycle over (this agent's lease ran out)."""


def data_fingerprint(source: Any) -> tuple[str, int]:
    """A hash of the names, sizes and modification times of the files under ``source``, and their number
    (the same fingerprint the pipeline cache keys a data folder by)."""
    from pathlib import Path

    from modelcycle.pipelines.engine import folder_fingerprint

    root = Path(source)
    if root.is_file():
        st = root.stat()
        return hashlib.sha256(f"{root.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()).hexdigest()[:24], 1
    if not root.is_dir():
        return "", 0
    digest, count = folder_fingerprint(str(root), limit=1_000_000)
    return digest[:24], count


class Agent:
    """Runs continuous-training cycles for one project.

    Args:
        spec: the loaded ``modelcycle.yaml``.
        client: where runs, versions, cycles and alerts are kept (one is built from the environment when None).
        lease_seconds: how long a cycle stays claimed without a sign of life from its agent.
        say: called with one line per step, for people watching (the CLI prints it).
        trust: allow pickled (PythonModel) candidates to be saved and to load at the gate and after promotion; the types
            model files may build beyond the library allow-list come from ``MODELCYCLE_TRUSTED_TYPES`` (the client's settings).

    Example:
        >>> agent = Agent(load_spec("modelcycle.yaml"))   # doctest: +SKIP
        >>> agent.run_once()                               # doctest: +SKIP
    """

    def __init__(self, spec: ProjectSpec, client: Any = None, lease_seconds: float = 120.0,
                 say: Callable[[str], None] | None = None, owner: str | None = None, trust: bool = False):
        from modelcycle.registry.fluent import get_registry
        from modelcycle.tracking import fluent

        self.spec = spec
        self.client = client or fluent.get_client()
        fluent.set_client(self.client)  # the pipeline's steps and the gate log through the default client
        self.registry = get_registry(self.client)
        self.store = self.client.store
        self.lease_seconds = lease_seconds
        self.trust = bool(trust)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.say = say or (lambda line: log.info(line))
        self._last_schedule_check: float | None = None
        self._outputs: dict[str, dict[str, Any]] = {}  # cycle id → the pipeline's output, kept between the steps of a cycle
        self._stop = threading.Event()

    # --- triggers ---------------------------------------------------------------------------
    def check(self, now: float | None = None) -> list[Hit]:
        """The triggers that fire now (each with the key its cycle will be recorded under)."""
        now = time.time() if now is None else now
        spec = self.spec
        hits: list[Hit] = []
        if spec.has_trigger("new_data") and spec.data_source is not None:
            digest, count = data_fingerprint(spec.data_source)
            if count:
                hits.append(Hit("new_data", f"new_data:{digest}", {"files": count, "source": str(spec.data_source)}))
        for trigger in spec.triggers:
            if trigger.kind == "schedule":
                from modelcycle.automation.cron import Cron

                since = self._last_schedule_check if self._last_schedule_check is not None else now - max(spec.interval, 60.0)
                tick = Cron(trigger.schedule or "").latest(since, now)
                if tick is not None:
                    hits.append(Hit("schedule", f"schedule:{trigger.schedule}:{tick:%Y-%m-%dT%H:%M}", {"tick": tick.isoformat()}))
        self._last_schedule_check = now
        if spec.has_trigger("drift") or spec.has_trigger("performance"):
            firing = self.monitor(now)
            for rule in ("drift", "performance"):
                alert = firing.get(rule)
                if alert is not None and spec.has_trigger(rule):
                    hits.append(Hit(rule, f"alert:{alert['id']}", {"message": alert["message"]}, alert_id=alert["id"]))
        return hits

    def monitor(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Summarise the recent prediction log with the spec's alert rules; the alerts firing afterwards."""
        from modelcycle.monitoring import monitor, parse_window

        now = time.time() if now is None else now
        seconds = parse_window(self.spec.window)
        model = self._served_name()
        monitor(model, seconds, start=now - 24 * seconds, end=now, client=self.client, rules=self.spec.alert_rules(),
                drift_method=self.spec.drift_method, drift_share=self.spec.drift_share, closed_only=True)
        return self.store.alert_firing(model)

    def _served_name(self) -> str:
        ref = self.spec.serve_model or self.spec.model
        return ref.split("@", 1)[0].split("/", 1)[0]

    # --- the loop ---------------------------------------------------------------------------
    def run_once(self) -> list[dict[str, Any]]:
        """Finish cycles whose agent died, then run a cycle for each trigger that fires and has none yet."""
        done = []
        while True:  # cycles left unfinished by an agent that died (their lease ran out)
            now = time.time()
            cycle = self.store.cycle_claim_stale(self.spec.name, self.owner, now, now + self.lease_seconds)
            if cycle is None:
                break
            self.say(f"resuming cycle {cycle['id'][:8]} ({cycle['trigger']}) from {cycle['state']}")
            done.append(self._run(cycle))
        claimed: dict[str, Any] | None = None
        for hit in self.check():
            now = time.time()
            cycle = {"id": uuid.uuid4().hex, "project": self.spec.name, "trigger": hit.kind, "trigger_key": hit.key[:250],
                     "state": "training", "owner": self.owner, "lease_until": now + self.lease_seconds, "started_at": now,
                     "updated_at": now, "alert_id": hit.alert_id, "model": self.spec.model, "detail": {"trigger": hit.detail}}
            if claimed is not None:  # triggers that fire together retrain once: the others are recorded as merged into it
                cycle |= {"state": "merged", "finished_at": now, "detail": {"trigger": hit.detail, "merged_into": claimed["id"]}}
            if not self.store.cycle_claim_new(cycle):
                continue  # this trigger already has its cycle (run by us earlier, or by another agent)
            if claimed is None:
                claimed = cycle
                self.say(f"{hit.kind} trigger fired: cycle {cycle['id'][:8]}")
            else:
                self.say(f"{hit.kind} trigger fired too: merged into cycle {claimed['id'][:8]}")
        if claimed is not None:
            done.append(self._run(self.store.cycle_get(claimed["id"]) or claimed))
        return done

    def run_now(self, reason: str = "manual") -> dict[str, Any]:
        """Run one cycle now, whatever the triggers say (``modelcycle agent --now``); returns the finished cycle."""
        now = time.time()
        key = f"manual:{uuid.uuid4().hex}"
        cycle = {"id": uuid.uuid4().hex, "project": self.spec.name, "trigger": "manual", "trigger_key": key, "state": "training",
                 "owner": self.owner, "lease_until": now + self.lease_seconds, "started_at": now, "updated_at": now,
                 "model": self.spec.model, "detail": {"trigger": {"message": reason}}}
        self.store.cycle_claim_new(cycle)
        self.say(f"manual run: cycle {cycle['id'][:8]} ({reason})")
        return self._run(self.store.cycle_get(cycle["id"]) or cycle)

    def run_forever(self, interval: float | None = None) -> None:
        """Check the triggers every ``interval`` seconds (the spec's agent.interval) until ``stop()``."""
        every = interval or self.spec.interval
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as e:  # the agent keeps watching; the next check tries again
                self.say(f"error: {type(e).__name__}: {e}")
            self._stop.wait(every)

    def stop(self) -> None:
        self._stop.set()

    # --- one cycle --------------------------------------------------------------------------
    def _run(self, cycle: dict[str, Any]) -> dict[str, Any]:
        renew = threading.Event()
        lost = threading.Event()

        def keep_lease() -> None:
            while not renew.wait(self.lease_seconds / 3):
                if not self.store.cycle_update(cycle["id"], self.owner, lease_until=time.time() + self.lease_seconds):
                    lost.set()
                    return

        keeper = threading.Thread(target=keep_lease, name="modelcycle-agent-lease", daemon=True)
        keeper.start()
        try:
            state = cycle["state"]
            while state not in FINISHED:
                if lost.is_set():
                    raise LeaseLost(f"cycle {cycle['id'][:8]} was taken over by another agent")
                state = getattr(self, f"_step_{state}")(cycle)
                cycle = self.store.cycle_get(cycle["id"]) or cycle
        except LeaseLost as e:
            self.say(str(e))
        except Exception as e:  # a failed pipeline or gate: recorded, the champion stays
            message = f"{type(e).__name__}: {e}".splitlines()[0][:2000]
            self._update(cycle, state="failed", finished_at=time.time(), detail={"error": message})
            self.say(f"cycle {cycle['id'][:8]} failed: {message}")
            from modelcycle.monitoring.alerts import raise_alert

            raise_alert(self.store, self.spec.model, "cycle_failed", f"continuous-training cycle {cycle['id'][:8]} failed: {message}",
                        {"cycle": cycle["id"]}, self.spec.alert_rules())
        finally:
            renew.set()
            self._outputs.pop(cycle["id"], None)
        return self.store.cycle_get(cycle["id"]) or cycle

    def _update(self, cycle: dict[str, Any], detail: dict[str, Any] | None = None, **fields: Any) -> None:
        fields.setdefault("updated_at", time.time())
        if not self.store.cycle_update(cycle["id"], self.owner, detail=detail, **fields):
            raise LeaseLost(f"cycle {cycle['id'][:8]} was taken over by another agent")

    def _train(self, cycle: dict[str, Any]) -> tuple[Any, Any]:
        """Run the pipeline (once per cycle in this process); its output must hold the model and labelled test data."""
        from modelcycle.pipelines.loader import load_pipeline

        if cycle["id"] in self._outputs:
            return self._outputs[cycle["id"]], cycle["run_id"]

        if not self.spec.pipeline:
            raise InvalidInputError(f"{self.spec.path}: the spec has no pipeline: to retrain with")
        pipe = load_pipeline(self.spec.pipeline)
        params = dict(self.spec.params)
        if "data" in pipe.signature.parameters and self.spec.data_source is not None and "data" not in params:
            params["data"] = str(self.spec.data_source)
        self.say(f"cycle {cycle['id'][:8]}: running pipeline {pipe.name}")
        result = pipe.run(client=self.client, experiment=self.spec.name, **params)
        if not cycle["run_id"]:  # a resumed cycle keeps the run its candidate came from
            self._update(cycle, run_id=result.run_id)
            cycle["run_id"] = result.run_id
        output = result.output
        if not isinstance(output, dict) or "model" not in output or "test" not in output:
            raise InvalidInputError(
                f"pipeline {pipe.name} must return {{'model': <fitted model>, 'test': <held-out frame with {self.spec.target!r}>, "
                f"'train': <training frame>}} for the controller to gate it; it returned {type(output).__name__}")
        self._outputs = {cycle["id"]: output}
        return output, cycle["run_id"]

    def _step_training(self, cycle: dict[str, Any]) -> str:
        output, run_id = self._train(cycle)
        version = self._register(cycle, output, run_id)
        self._update(cycle, state="validating", version=version)
        return "validating"

    def _register(self, cycle: dict[str, Any], output: dict[str, Any], run_id: str) -> int:
        found = self.registry.search_model_versions(f"name = '{self.spec.model}' and tags.cycle = '{cycle['id']}'")
        if found:  # registered before the agent died: the same candidate
            return found[0].version
        model, target = output["model"], self.spec.target
        train = output.get("train", output["test"])
        features = [c for c in getattr(model, "feature_names_in_", [])] or [c for c in train.columns if c != target]
        run = self.client.start_run(experiment=self.spec.name, name=f"candidate {cycle['id'][:8]}", parent=run_id,
                                    tags={"cycle": cycle["id"], "trigger": cycle["trigger"]}, activate=False)
        try:
            # the candidate is saved as it will be loaded: pickle only with --trust (types beyond the allow-list: the settings')
            logged = self.client.log_model(model, run_id=run.id, reference_data=train[features], allow_pickle=self.trust)
        finally:
            run.end()
        version = self.registry.register_model(logged, self.spec.model, description=f"cycle {cycle['id'][:8]} ({cycle['trigger']})",
                                               tags={"cycle": cycle["id"], "trigger": cycle["trigger"]})
        self.say(f"cycle {cycle['id'][:8]}: registered {self.spec.model} version {version.version}")
        return version.version

    def _step_validating(self, cycle: dict[str, Any]) -> str:
        from modelcycle.registry.fluent import validate_model

        name, version = self.spec.model, cycle["version"]
        stored = self.registry.verdicts(name, version)
        if stored:
            verdict_id, passed = stored[-1]["id"], stored[-1]["passed"]
            failures = [f"{r['rule']}: {r['detail']}" for r in stored[-1].get("rules", []) if not r.get("passed")]
        else:
            output, _ = self._train(cycle)  # the test data: the pipeline's steps come from the cache
            verdict = validate_model(f"models:/{name}/{version}", output["test"], self.spec.policy or {}, target=self.spec.target,
                                     trust=self.trust)
            verdict_id, passed, failures = verdict.id, verdict.passed, verdict.failures()
        self.say(f"cycle {cycle['id'][:8]}: version {version} {'passed' if passed else 'failed'} the gate"
                 + ("" if passed else f" ({'; '.join(failures)[:300]})"))
        if not passed:
            self._update(cycle, state="rejected", verdict_id=verdict_id, finished_at=time.time(), detail={"failures": failures})
            return "rejected"
        self._update(cycle, state="promoting", verdict_id=verdict_id)
        return "promoting"

    def _step_promoting(self, cycle: dict[str, Any]) -> str:
        name, alias, version = self.spec.model, self.spec.alias, cycle["version"]
        mark = f"cycle {cycle['id']}"
        event = next((e for e in self.registry.history(name, alias) if e.reason and mark in e.reason), None)
        if event is None:  # not promoted yet (the alias log says so): promote, once
            event = self.registry.promote(name, version, alias=alias, reason=f"{mark} ({cycle['trigger']})")
            self.say(f"cycle {cycle['id'][:8]}: promoted {name} version {version} to {alias}")
        self._update(cycle, state="verifying", alias_event_id=event.id)
        return "verifying"

    def _step_verifying(self, cycle: dict[str, Any]) -> str:
        """The promoted version must load (and, with serve.url, be served); else the alias goes back and an alert is raised."""
        name, alias, version = self.spec.model, self.spec.alias, cycle["version"]
        problem = None
        try:
            self.registry.verify_version(name, version, trust=self.trust)  # from the store, as the server will
        except Exception as e:
            problem = f"version {version} failed to load after promotion: {e}"
        served = None
        if problem is None and self.spec.serve_url:
            served, problem = self._wait_served(version)
        if problem is not None:
            current = self.registry.get_model_version(name, alias)
            if current.version == version:
                self.registry.rollback(name, alias, reason=f"cycle {cycle['id']}: {problem}"[:2000])
            from modelcycle.monitoring.alerts import raise_alert

            raise_alert(self.store, name, "load_failure", f"{name} version {version} was rolled back: {problem}",
                        {"cycle": cycle["id"], "version": version}, self.spec.alert_rules())
            self.say(f"cycle {cycle['id'][:8]}: {problem}; rolled {alias} back")
            self._update(cycle, state="rolled_back", finished_at=time.time(), detail={"error": problem})
            return "rolled_back"
        self._update(cycle, state="done", finished_at=time.time(), detail={"served_version": served} if served else None)
        return "done"

    def _wait_served(self, version: int, timeout: float = 60.0) -> tuple[int | None, str | None]:
        import json
        import urllib.request

        deadline = time.time() + timeout
        failures = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.spec.serve_url}/version", timeout=5) as r:  # the spec's own server
                    described = json.loads(r.read())["model"]
            except Exception:
                time.sleep(1)
                continue
            if described.get("version") == version:
                return version, None
            if failures is None:
                failures = described.get("failed_swaps", 0)
            elif described.get("failed_swaps", 0) > failures:
                return None, f"the server at {self.spec.serve_url} failed to load version {version}"
            time.sleep(0.5)
        return None, f"the server at {self.spec.serve_url} did not swap to version {version} within {timeout:.0f} s"
