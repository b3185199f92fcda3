"""The controller that closes the loop: triggers → pipeline run → candidate version → verdict → alias move → served.

Each trigger (new data, a drift or performance alert, a schedule tick) has a key; a cycle is
inserted under that key, so a trigger runs at most one cycle however many agents see it. A cycle
records each step as it finishes (``training`` → ``validating`` → ``promoting`` → ``verifying`` →
``done``, or ``rejected``/``rolled_back``/``failed``) and is worked on only by the agent that holds
its lease. An agent killed mid-cycle loses the lease; the next agent to start takes the cycle over
and resumes it from the last recorded step — re-running the pipeline costs little, its finished
steps come from the cache — and looks up what was done before acting again: the candidate by its
``cycle`` tag, the verdict by version, the promotion in the alias log. So a trigger never promotes twice.

A drift or performance alert that still fires after a cycle that did not fix it (rejected, failed, no
change, rolled back) triggers a retry once there is something new to learn from — new files in the data
source, ``agent.retry.min_new_rows`` labelled predictions since that cycle started — or at the latest
after a back-off that doubles with each attempt. A retry is keyed by the cycle it follows, so it, too, runs
once however many agents see it. Retraining that yields a model already registered (every step from the
cache) registers and promotes nothing: the cycle ends ``no_change`` and says what it would need.
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
from dataclasses import dataclass, field, replace
from typing import Any

from modelcycle.automation.spec import ProjectSpec
from modelcycle.entities import Alert, Cycle, CycleState
from modelcycle.errors import InvalidInputError, ModelcycleError

__all__ = ["Agent", "Hit", "data_fingerprint"]

log = logging.getLogger("modelcycle.agent")

UNHEALTHY = ("drift", "performance")  # the alerts a retry keeps answering while they fire


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
    """A hash of the names, sizes and modification times (for objects: ETags) of the files under ``source`` — a
    local folder or file, or an object-store URL — and their number."""
    from modelcycle.store.locations import fingerprint

    digest, count, _ = fingerprint(source if isinstance(source, str) else str(source))
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
        serve_timeout: with ``serve.url``, how long to wait for the server to answer with a promoted version.

    Example:
        >>> agent = Agent(load_spec("modelcycle.yaml"))   # doctest: +SKIP
        >>> agent.run_once()                               # doctest: +SKIP
    """

    def __init__(self, spec: ProjectSpec, client: Any = None, lease_seconds: float = 120.0,
                 say: Callable[[str], None] | None = None, owner: str | None = None, trust: bool = False,
                 serve_timeout: float = 60.0):
        from modelcycle.registry.fluent import get_registry
        from modelcycle.tracking import fluent

        self.spec = spec
        self.client = client or fluent.get_client()
        fluent.set_client(self.client)  # the pipeline's steps and the gate log through the default client
        self.registry = get_registry(self.client)
        self.store = self.client.store
        self.lease_seconds = lease_seconds
        self.trust = bool(trust)
        self.serve_timeout = serve_timeout
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.say = say or (lambda line: log.info(line))
        self.waiting: str | None = None  # why no cycle runs while production is unhealthy (``agent --status``)
        self._spec_stamp = self._stamp()
        self._last_schedule_check: float | None = None
        self._outputs: dict[str, dict[str, Any]] = {}  # cycle id → the pipeline's output, kept between the steps of a cycle
        self._stop = threading.Event()

    # --- the spec ---------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.spec.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def reload_spec(self) -> bool:
        """Read ``modelcycle.yaml`` again when it changed since it was read; True when the new spec is in use.

        A spec that no longer checks out is reported and the one in use is kept.
        """
        from modelcycle.automation.spec import SpecError, load_spec

        stamp = self._stamp()
        if stamp is None or stamp == self._spec_stamp:
            return False
        self._spec_stamp = stamp
        try:
            spec = load_spec(self.spec.path)
        except SpecError as e:
            self.say(f"{self.spec.path} changed but is not valid, so the agent keeps the spec it had: {e}")
            return False
        if spec.name != self.spec.name:
            self.say(f"{self.spec.path} changed the project's name to {spec.name!r}; restart the agent to follow it "
                     f"(it keeps working for {self.spec.name!r})")
            return False
        self.spec = spec
        self.say(f"{spec.path} changed: the agent follows the new spec")
        return True

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
        self.waiting = None
        if spec.has_trigger("drift") or spec.has_trigger("performance"):
            try:
                firing = self.monitor(now)
            except Exception as e:  # a damaged log file must not stop the other triggers: said, and judged from the store
                problem = f"monitoring failed, so drift and performance are judged on the alerts already stored: {type(e).__name__}: {e}"
                if problem != getattr(self, "_monitor_problem", None):
                    self.say(problem)
                self._monitor_problem = problem
                firing = self.store.alert_firing(self._served_name())
            else:
                self._monitor_problem = None
            hits += self._alert_hits(firing, now)
        return hits

    def _alert_hits(self, firing: dict[str, Alert], now: float) -> list[Hit]:
        """A hit for each firing alert that has no cycle yet; else one retry when the last attempt did not fix it
        and there is something new to learn from (``self.waiting`` says why not, otherwise)."""
        alerts = [firing[rule] for rule in UNHEALTHY if rule in firing and self.spec.has_trigger(rule)]
        hits = []
        tried = []
        for alert in alerts:
            if self.store.cycle_list(self.spec.name, 1, alert_id=alert.id):
                tried.append(alert)
            else:
                hits.append(Hit(alert.rule, f"alert:{alert.id}", {"message": alert.message}, alert_id=alert.id))
        if hits:
            # an alert that resolved and fired again is new, but what the last retraining lacked is not: a cycle that
            # ended without fixing production holds the next one back as a retry would be (no back-off skipped by flapping)
            last = self._last_unhealthy_cycle()
            if last is not None and last.finished and last.state not in (CycleState.DONE, CycleState.MERGED):
                gate = self._retry_after(last, hits[0].alert_id and firing[hits[0].kind], now)
                if gate is None:
                    return []
                return [Hit(h.kind, h.key, {**h.detail, "attempt": gate.detail["attempt"], "why": gate.detail["why"],
                                           "retry_of": last.id}, alert_id=h.alert_id) for h in hits]
            return hits
        if not tried:
            return hits
        retry = self._retry(tried, now)
        return [retry] if retry is not None else []

    def _last_unhealthy_cycle(self) -> Cycle | None:
        """The latest cycle a drift or performance trigger started (a merged one stands for the cycle it was merged into)."""
        for cycle in self.store.cycle_list(self.spec.name, 20):
            if cycle.trigger in UNHEALTHY:
                if cycle.state == CycleState.MERGED and cycle.detail.get("merged_into"):
                    return self.store.cycle_get(cycle.detail["merged_into"]) or cycle
                return cycle
        return None

    def _last_attempt(self, alerts: list[Alert]) -> Cycle | None:
        """The latest cycle run for any of ``alerts`` (a merged one stands for the cycle it was merged into)."""
        cycles = [c for a in alerts for c in self.store.cycle_list(self.spec.name, 1, alert_id=a.id)]
        if not cycles:
            return None
        last = max(cycles, key=lambda c: c.started_at)
        if last.state == CycleState.MERGED:
            into = last.detail.get("merged_into")
            last = (self.store.cycle_get(into) if into else None) or last
        return last

    def _retry(self, alerts: list[Alert], now: float) -> Hit | None:
        last = self._last_attempt(alerts)
        if last is None:
            return None
        return self._retry_after(last, alerts[0], now)

    def _retry_after(self, last: Cycle, alert: Alert, now: float) -> Hit | None:
        """A retry of ``last`` for ``alert`` when there is something new to learn from, else None (``self.waiting`` says why)."""
        short = last.id[:8]
        if not last.finished:
            self.waiting = f"cycle {short} ({last.state}) is working on the {alert.rule} alert"
            return None
        if last.state == CycleState.DONE:
            self.waiting = (f"cycle {short} promoted version {last.version}; the {alert.rule} alert is judged again on "
                            "the windows it serves")
            return None
        detail = last.detail
        attempt = last.attempt
        why = []
        if self.spec.data_source is not None and detail.get("data_fingerprint") is not None:
            digest, _ = data_fingerprint(self.spec.data_source)
            if digest != detail["data_fingerprint"]:
                why.append(f"new data in {self.spec.data_source}")
        from modelcycle.monitoring.feedback import count_new_labels
        from modelcycle.store.predictions import settings_root

        need = self.spec.retry.min_new_rows
        labelled = 0
        if self.spec.feedback is not None:  # labels teach the pipeline something only when it is handed them
            labelled = count_new_labels(settings_root(self.client.settings), self._served_name(), last.started_at)
            if labelled >= need:
                why.append(f"{labelled:,} new labelled predictions")
        wait = self.spec.retry.wait(attempt)
        due = (last.finished_at or last.started_at) + wait
        if now >= due:
            why.append(f"the back-off of {_duration(wait)} after attempt {attempt} passed")
        if not why:
            news = [f"{need - labelled:,} more labelled predictions arrive"] if self.spec.feedback is not None else []
            if self.spec.data_source is not None:
                news.append(f"files in {self.spec.data_source} change")
            news.append(f"at {time.strftime('%H:%M:%S', time.localtime(due))} (back-off {_duration(wait)})")
            self.waiting = (f"the {alert.rule} alert still fires after cycle {short} ended {last.state}; the agent retries "
                            f"when {', or '.join(news[:-1]) + ', or ' if len(news) > 1 else ''}{news[-1]}")
            return None
        message = (f"{alert.message} — still firing after cycle {short} ended {last.state}; "
                   f"attempt {attempt + 1}: {', '.join(why)}")
        return Hit(alert.rule, f"retry:{last.id}", {"message": message, "retry_of": last.id, "attempt": attempt + 1,
                                                          "why": why}, alert_id=alert.id)

    def monitor(self, now: float | None = None) -> dict[str, Alert]:
        """Summarise the recent prediction log with the spec's alert rules; the alerts firing afterwards.

        Only windows since the served alias last moved are judged: an alert is about the version that serves.
        """
        from modelcycle.monitoring import monitor, parse_window

        now = time.time() if now is None else now
        seconds = parse_window(self.spec.window)
        model = self._served_name()
        since, version = self._served_since()
        monitor(model, seconds, start=now - 24 * seconds, end=now, client=self.client, rules=self.spec.alert_rules(),
                drift_method=self.spec.drift_method, drift_share=self.spec.drift_share, closed_only=True,
                judge_since=since, judge_version=version)
        return self.store.alert_firing(model)

    def _served_since(self) -> tuple[float | None, int | None]:
        """When the served alias last moved and the version it moved to (None, None: it never did)."""
        name, alias = self._served_name(), self._served_alias()
        events = self.store.alias_events(name, alias)
        return (events[-1].at, events[-1].to_version) if events else (None, None)

    def _served_name(self) -> str:
        ref = self.spec.serve_model or self.spec.model
        return ref.split("@", 1)[0].split("/", 1)[0]

    def _served_alias(self) -> str:
        ref = self.spec.serve_model or ""
        return ref.split("@", 1)[1] if "@" in ref else self.spec.alias

    def explain(self, now: float | None = None) -> str | None:
        """Why no cycle runs although an alert fires (from the store, without summarising windows); None when none fires."""
        now = time.time() if now is None else now
        self.waiting = None
        hits = self._alert_hits(self.store.alert_firing(self._served_name()), now)
        if hits:
            return f"{hits[0].kind} trigger is due: {hits[0].detail.get('message', '')}"
        return self.waiting

    # --- the loop ---------------------------------------------------------------------------
    def run_once(self) -> list[Cycle]:
        """Finish cycles whose agent died, then run a cycle for each trigger that fires and has none yet."""
        self.reload_spec()
        done = []
        while True:  # cycles left unfinished by an agent that died (their lease ran out)
            now = time.time()
            cycle = self.store.cycle_claim_stale(self.spec.name, self.owner, now, now + self.lease_seconds)
            if cycle is None:
                break
            self.say(f"resuming cycle {cycle.id[:8]} ({cycle.trigger}) from {cycle.state}")
            done.append(self._run(cycle))
        claimed: Cycle | None = None
        for hit in self.check():
            now = time.time()
            detail = {"trigger": hit.detail, "attempt": int(hit.detail.get("attempt", 1))}
            cycle = Cycle(id=uuid.uuid4().hex, project=self.spec.name, trigger=hit.kind, trigger_key=hit.key[:250],
                          state=CycleState.TRAINING, owner=self.owner, lease_until=now + self.lease_seconds, started_at=now,
                          updated_at=now, alert_id=hit.alert_id, model=self.spec.model, detail=detail)
            if claimed is not None:  # triggers that fire together retrain once: the others are recorded as merged into it
                cycle = replace(cycle, state=CycleState.MERGED, finished_at=now, detail={**detail, "merged_into": claimed.id})
            if not self.store.cycle_claim_new(cycle):
                continue  # this trigger already has its cycle (run by us earlier, or by another agent)
            if claimed is None:
                claimed = cycle
                self.say(f"{hit.kind} trigger fired: cycle {cycle.id[:8]}"
                         + (f" (attempt {detail['attempt']}: {', '.join(hit.detail.get('why', []))})" if detail["attempt"] > 1 else ""))
            else:
                self.say(f"{hit.kind} trigger fired too: merged into cycle {claimed.id[:8]}")
        if claimed is not None:
            done.append(self._run(self.store.cycle_get(claimed.id) or claimed))
        elif self.waiting:
            self.say(f"waiting: {self.waiting}")
        return done

    def run_now(self, reason: str = "manual") -> Cycle:
        """Run one cycle now, whatever the triggers say (``modelcycle agent --now``); returns the finished cycle."""
        now = time.time()
        key = f"manual:{uuid.uuid4().hex}"
        cycle = Cycle(id=uuid.uuid4().hex, project=self.spec.name, trigger="manual", trigger_key=key, state=CycleState.TRAINING,
                      owner=self.owner, lease_until=now + self.lease_seconds, started_at=now, updated_at=now,
                      model=self.spec.model, detail={"trigger": {"message": reason}})
        self.store.cycle_claim_new(cycle)
        self.say(f"manual run: cycle {cycle.id[:8]} ({reason})")
        if self.spec.has_trigger("new_data") and self.spec.data_source is not None:
            digest, count = data_fingerprint(self.spec.data_source)
            if count:  # this cycle trains on the data as it is: its new-data trigger is merged into it, not run again
                self.store.cycle_claim_new(replace(
                    cycle, id=uuid.uuid4().hex, trigger="new_data", trigger_key=f"new_data:{digest}", state=CycleState.MERGED,
                    finished_at=now, detail={"trigger": {"files": count, "source": str(self.spec.data_source)},
                                             "merged_into": cycle.id}))
        return self._run(self.store.cycle_get(cycle.id) or cycle)

    def run_forever(self, interval: float | None = None) -> None:
        """Check the triggers every ``interval`` seconds (the spec's agent.interval, read again when it changes) until ``stop()``."""
        last_said = None
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as e:  # the agent keeps watching; the next check tries again
                line = f"error: {type(e).__name__}: {e}"
                if line != last_said:
                    self.say(line)
                last_said = line
            self._stop.wait(interval or self.spec.interval)

    def stop(self) -> None:
        self._stop.set()

    # --- one cycle --------------------------------------------------------------------------
    def _run(self, cycle: Cycle) -> Cycle:
        renew = threading.Event()
        lost = threading.Event()

        def keep_lease() -> None:
            while not renew.wait(self.lease_seconds / 3):
                if not self.store.cycle_update(cycle.id, self.owner, lease_until=time.time() + self.lease_seconds):
                    lost.set()
                    return

        keeper = threading.Thread(target=keep_lease, name="modelcycle-agent-lease", daemon=True)
        keeper.start()
        try:
            state = cycle.state
            while not state.finished:
                if lost.is_set():
                    raise LeaseLost(f"cycle {cycle.id[:8]} was taken over by another agent")
                state = getattr(self, f"_step_{state.value}")(cycle)
                cycle = self.store.cycle_get(cycle.id) or cycle
        except LeaseLost as e:
            self.say(str(e))
        except Exception as e:  # a failed pipeline or gate: recorded, the champion stays
            message = f"{type(e).__name__}: {e}".splitlines()[0][:2000]
            self._update(cycle, state=CycleState.FAILED, finished_at=time.time(), detail={"error": message})
            self.say(f"cycle {cycle.id[:8]} failed: {message}")
            from modelcycle.monitoring.alerts import raise_alert

            raise_alert(self.store, self.spec.model, "cycle_failed", f"continuous-training cycle {cycle.id[:8]} failed: {message}",
                        {"cycle": cycle.id}, self.spec.alert_rules())
        finally:
            renew.set()
            self._outputs.pop(cycle.id, None)
        return self.store.cycle_get(cycle.id) or cycle

    def _update(self, cycle: Cycle, detail: dict[str, Any] | None = None, **fields: Any) -> None:
        fields.setdefault("updated_at", time.time())
        if not self.store.cycle_update(cycle.id, self.owner, detail=detail, **fields):
            raise LeaseLost(f"cycle {cycle.id[:8]} was taken over by another agent")

    def _params(self, pipe: Any, cycle: Cycle) -> Cycle:
        """The pipeline's parameters: the spec's, the data source as ``data``, labelled predictions as ``data`` or ``feedback``."""
        spec = self.spec
        params = dict(spec.params)
        accepts = pipe.signature.parameters
        if "data" in accepts and spec.data_source is not None and "data" not in params:
            params["data"] = str(spec.data_source)
        if spec.feedback is not None:
            from modelcycle.monitoring.feedback import export_feedback
            from modelcycle.store.predictions import settings_root

            folder = os.path.join(self.client.settings.home, "feedback", spec.name)
            path, rows = export_feedback(settings_root(self.client.settings), self._served_name(), folder, spec.feedback, spec.target or "label")
            self.say(f"cycle {cycle.id[:8]}: {rows:,} labelled predictions from the last {_duration(spec.feedback)} "
                     f"handed to the pipeline")
            if spec.feedback_only:
                if "data" not in accepts:
                    raise InvalidInputError(f"pipeline {pipe.name} has no data parameter to receive the labelled predictions "
                                            "(data: {source: predictions}); add one: def training(data: str): ...")
                params["data"] = folder
            else:
                if "feedback" not in accepts:
                    raise InvalidInputError(f"pipeline {pipe.name} has no feedback parameter to receive the labelled predictions "
                                            "(data: {feedback: ...}); add one: def training(data: str, feedback: str | None = None)")
                params["feedback"] = str(path)
        return params

    def _train(self, cycle: Cycle) -> tuple[Any, Any]:
        """Run the pipeline (once per cycle in this process); its output must hold the model and labelled test data."""
        from modelcycle.pipelines.loader import load_pipeline

        if cycle.id in self._outputs:
            return self._outputs[cycle.id], cycle.run_id

        if not self.spec.pipeline:
            raise InvalidInputError(f"{self.spec.path}: the spec has no pipeline: to retrain with")
        pipe = load_pipeline(self.spec.pipeline)
        fingerprint = data_fingerprint(self.spec.data_source)[0] if self.spec.data_source is not None else None
        params = self._params(pipe, cycle)
        self.say(f"cycle {cycle.id[:8]}: running pipeline {pipe.name}")
        result = pipe.run(client=self.client, experiment=self.spec.name, executor=self.spec.executor, **params)
        steps = list(result.steps.values())
        key = hashlib.sha256("\n".join(sorted(f"{s.name}={s.cache_key}" for s in steps)).encode()).hexdigest()[:32]
        cached = bool(steps) and all(s.cached for s in steps)
        self._update(cycle, detail={"data_fingerprint": fingerprint, "training_key": key, "all_cached": cached})
        run_id = cycle.run_id or result.run_id  # a resumed cycle keeps the run its candidate came from
        if not cycle.run_id:
            self._update(cycle, run_id=run_id)
        output = result.output
        if not isinstance(output, dict) or "model" not in output or "test" not in output:
            raise InvalidInputError(
                f"pipeline {pipe.name} must return {{'model': <fitted model>, 'test': <held-out frame with {self.spec.target!r}>, "
                f"'train': <training frame>}} for the controller to gate it; it returned {type(output).__name__}")
        self._outputs = {cycle.id: output}
        return output, run_id

    def _step_training(self, cycle: Cycle) -> CycleState:
        output, run_id = self._train(cycle)
        detail = (self.store.cycle_get(cycle.id) or cycle).detail
        same = self._same_model(cycle, detail)
        if same is not None:
            needs = []
            if self.spec.data_source is not None:
                needs.append(f"new or changed files in {self.spec.data_source}")
            if self.spec.feedback is not None:
                needs.append("new labelled predictions")
            if not needs:
                needs.append("new data or changed parameters")
            reason = (f"every step came from the cache: retraining gives version {same} again, so nothing was registered or "
                      f"promoted; a better model needs {' or '.join(needs)}")
            self.say(f"cycle {cycle.id[:8]}: no change — {reason}")
            self._update(cycle, state=CycleState.NO_CHANGE, finished_at=time.time(), detail={"reason": reason, "same_as": same})
            return CycleState.NO_CHANGE
        version = self._register(cycle, output, run_id, detail.get("training_key"))
        self._update(cycle, state=CycleState.VALIDATING, version=version)
        return CycleState.VALIDATING

    def _same_model(self, cycle: Cycle, detail: dict[str, Any]) -> int | None:
        """The registered version this cycle's training would repeat (every step cached, the same steps), or None."""
        key = detail.get("training_key")
        if not key or not detail.get("all_cached"):
            return None
        mine = self.registry.search_model_versions(f"name = '{self.spec.model}' and tags.cycle = '{cycle.id}'")
        if mine:  # registered before the agent died: carry on with it
            return None
        found = self.registry.search_model_versions(f"name = '{self.spec.model}' and tags.training_key = '{key}'")
        return max(v.version for v in found) if found else None

    def _register(self, cycle: Cycle, output: dict[str, Any], run_id: str, training_key: str | None = None) -> int:
        found = self.registry.search_model_versions(f"name = '{self.spec.model}' and tags.cycle = '{cycle.id}'")
        if found:  # registered before the agent died: the same candidate
            return found[0].version
        model, target = output["model"], self.spec.target
        train = output.get("train", output["test"])
        features = [c for c in getattr(model, "feature_names_in_", [])] or [c for c in train.columns if c not in (target, "predicted_at")]
        tags = {"cycle": cycle.id, "trigger": cycle.trigger, **({"training_key": training_key} if training_key else {})}
        run = self.client.start_run(experiment=self.spec.name, name=f"candidate {cycle.id[:8]}", parent=run_id,
                                    tags=tags, activate=False)
        try:
            # the candidate is saved as it will be loaded: pickle only with --trust (types beyond the allow-list: the settings')
            logged = self.client.log_model(model, run_id=run.id, reference_data=train[features], allow_pickle=self.trust)
        finally:
            run.end()
        version = self.registry.register_model(logged, self.spec.model, description=f"cycle {cycle.id[:8]} ({cycle.trigger})",
                                               tags=tags)
        self.say(f"cycle {cycle.id[:8]}: registered {self.spec.model} version {version.version}")
        return version.version

    def _gate_data(self, cycle: Cycle, test: Any) -> tuple[Any, str]:
        """The rows the gate judges: for a cycle an alert started (or was merged into), the test rows predicted after the
        change began (when the test set says when each row was predicted and holds enough of them); else the whole test
        set."""
        alert_ids = [cycle.alert_id] if cycle.alert_id else [  # or the alerts of triggers merged into it (new data + drift)
            m.alert_id for m in self.store.cycle_list(self.spec.name, 20, state=CycleState.MERGED.value)
            if m.alert_id and (m.detail or {}).get("merged_into") == cycle.id]
        starts = [a.window_start for a in map(self.store.alert_get, alert_ids) if a is not None and a.window_start is not None]
        since = min(starts) if starts else None
        if since is None or "predicted_at" not in getattr(test, "columns", ()):
            return test, f"all {len(test):,} test rows"
        import pandas as pd

        after = test[pd.to_datetime(test["predicted_at"], utc=True) >= pd.Timestamp(since, unit="s", tz="UTC")]
        least = max(50, self.spec.min_labelled)
        if len(after) < least:
            return test, f"all {len(test):,} test rows (only {len(after)} predicted after the change; {least} needed to judge on those alone)"
        return after, f"the {len(after):,} test rows predicted after the change began ({time.strftime('%H:%M:%S', time.localtime(since))})"

    def _step_validating(self, cycle: Cycle) -> CycleState:
        from modelcycle.registry.fluent import validate_model

        name, version = self.spec.model, cycle.version
        # only the verdict this cycle recorded counts (a verdict of the version made elsewhere, with another policy, does not),
        # and only while the champion it was compared with still is the champion
        stored = [v for v in self.registry.verdicts(name, version) if v.id == cycle.verdict_id]
        current = self.store.get_alias(name, self.spec.alias)
        if stored and stored[-1].baseline_alias == self.spec.alias and stored[-1].baseline_version != current:
            stored = []  # judged against a champion that has been replaced since: judge again
        if stored:
            verdict_id, passed, failures = stored[-1].id, stored[-1].passed, stored[-1].failures()
            gate = cycle.detail.get("gate_data", "")
        else:
            output, _ = self._train(cycle)  # the test data: the pipeline's steps come from the cache
            data, gate = self._gate_data(cycle, output["test"])
            verdict = validate_model(f"models:/{name}/{version}", data, self.spec.policy or {}, target=self.spec.target,
                                     trust=self.trust)
            verdict_id, passed, failures = verdict.id, verdict.passed, verdict.failures()
            if verdict.baseline_version is not None:
                gate += f", compared with {self.spec.alias} version {verdict.baseline_version}"
        self.say(f"cycle {cycle.id[:8]}: version {version} {'passed' if passed else 'failed'} the gate on {gate}"
                 + ("" if passed else f" ({'; '.join(failures)[:300]})"))
        if not passed:
            self._update(cycle, state=CycleState.REJECTED, verdict_id=verdict_id, finished_at=time.time(),
                         detail={"failures": failures, "gate_data": gate})
            return CycleState.REJECTED
        self._update(cycle, state=CycleState.PROMOTING, verdict_id=verdict_id, detail={"gate_data": gate})
        return CycleState.PROMOTING

    def _step_promoting(self, cycle: Cycle) -> CycleState:
        from modelcycle.errors import GateError

        name, alias, version = self.spec.model, self.spec.alias, cycle.version
        mark = f"cycle {cycle.id}"
        event = next((e for e in self.registry.history(name, alias) if e.reason and mark in e.reason), None)
        latest = self.registry.verdicts(name, version)
        if event is None and (not latest or latest[-1].id != cycle.verdict_id):
            # promote() decides by the version's latest verdict: one recorded elsewhere since (another policy) is not ours
            self.say(f"cycle {cycle.id[:8]}: another verdict of version {version} was recorded meanwhile; validating again")
            self._update(cycle, state=CycleState.VALIDATING)
            return CycleState.VALIDATING
        if event is None:  # not promoted yet (the alias log says so): promote, once
            try:
                event = self.registry.promote(name, version, alias=alias, reason=f"{mark} ({cycle.trigger})")
            except GateError as e:
                if "promoted since" not in str(e) and "while this change was being decided" not in str(e):
                    raise
                self.say(f"cycle {cycle.id[:8]}: {alias} moved while this cycle ran; validating version {version} again")
                self._update(cycle, state=CycleState.VALIDATING)
                return CycleState.VALIDATING
            self.say(f"cycle {cycle.id[:8]}: promoted {name} version {version} to {alias}")
        self._update(cycle, state=CycleState.VERIFYING, alias_event_id=event.id)
        return CycleState.VERIFYING

    def _step_verifying(self, cycle: Cycle) -> CycleState:
        """The promoted version must load (and, with serve.url, be served); else the alias goes back and an alert is raised.

        A server that does not answer at all is not the version's fault: that is a warning (an alert), not a rollback.
        """
        from modelcycle.monitoring.alerts import raise_alert

        name, alias, version = self.spec.model, self.spec.alias, cycle.version
        problem = None
        try:
            self.registry.verify_version(name, version, trust=self.trust)  # from the store, as the server will
        except Exception as e:
            problem = f"version {version} failed to load after promotion: {e}"
        served, warning = None, None
        if problem is None and self.spec.serve_url:
            served, problem, blamed = self._wait_served(version, self.serve_timeout)
            if not blamed:
                warning, problem = problem, None
        if problem is not None:
            current = self.registry.get_model_version(name, alias)
            if current.version == version:
                self.registry.rollback(name, alias, reason=f"cycle {cycle.id}: {problem}"[:2000])
            raise_alert(self.store, name, "load_failure", f"{name} version {version} was rolled back: {problem}",
                        {"cycle": cycle.id, "version": version}, self.spec.alert_rules())
            self.say(f"cycle {cycle.id[:8]}: {problem}; rolled {alias} back")
            self._update(cycle, state=CycleState.ROLLED_BACK, finished_at=time.time(), detail={"error": problem})
            return CycleState.ROLLED_BACK
        if warning is not None:
            raise_alert(self.store, name, "server_unreachable", f"{name} version {version} was promoted, but {warning}",
                        {"cycle": cycle.id, "version": version, "url": self.spec.serve_url}, self.spec.alert_rules())
            self.say(f"cycle {cycle.id[:8]}: warning: {warning}; version {version} stays promoted (start the server, "
                     "or fix serve.url)")
        self._resolve_unhealthy(version, served=served is not None and warning is None)
        self._update(cycle, state=CycleState.DONE, finished_at=time.time(),
                     detail={"served_version": served} if served else ({"warning": warning} if warning else None))
        return CycleState.DONE

    def _resolve_unhealthy(self, version: int, served: bool = False) -> None:
        """The drift and performance alerts were about the version replaced, and a failed cycle or load is behind us:
        resolve them; windows of ``version`` judge anew. A server seen serving ``version`` answers again."""
        from modelcycle.monitoring.alerts import deliver

        model, now = self._served_name(), time.time()
        for rule in (*UNHEALTHY, "cycle_failed", "load_failure", *(("server_unreachable",) if served else ())):
            resolved = self.store.alert_resolve(model, rule, now)
            if resolved is not None:
                deliver({"id": resolved, "model": model, "rule": rule, "state": "resolved", "resolved_at": now,
                         "message": f"resolved: version {version} replaced the version this alert was about; the next "
                                    "windows judge the new one"}, self.spec.alert_rules(), self.store)

    def _wait_served(self, version: int, timeout: float = 60.0) -> tuple[int | None, str | None, bool]:
        """(served version, problem, whether the problem is the version's): a server that failed to load it is; one that
        does not answer, serves another model or alias, or is slow to swap is not (a warning, not a rollback)."""
        import json
        import urllib.request

        deadline = time.time() + timeout
        failures = None
        reached = False
        error = ""
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.spec.serve_url}/version", timeout=5) as r:  # the spec's own server
                    described = json.loads(r.read())["model"]
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                time.sleep(1)
                continue
            reached = True
            expected = f"models:/{self.spec.model}@{self.spec.alias}"
            served = described.get("uri")
            if described.get("name") != self.spec.model or (served is not None and f"models:/{served.removeprefix('models:/')}" != expected):
                return None, (f"the server at serve.url {self.spec.serve_url} serves {described.get('uri') or described.get('name')}, "
                              f"not {expected}, so it will not swap"), False
            if described.get("version") == version:
                return version, None, True
            if failures is None:
                failures = described.get("failed_swaps", 0)
            elif described.get("failed_swaps", 0) > failures:
                why = described.get("last_error")
                return None, f"the server at {self.spec.serve_url} failed to load version {version}" + (f": {why}" if why else ""), True
            time.sleep(0.5)
        if not reached:
            return None, f"no server answered at serve.url {self.spec.serve_url} for {timeout:.0f} s ({error[:200]})", False
        # slow is not broken: without a failed swap there is no evidence against the version
        return None, f"the server at {self.spec.serve_url} did not swap to version {version} within {timeout:.0f} s", False


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
