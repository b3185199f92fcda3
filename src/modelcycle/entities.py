"""Frozen records passed between layers: runs, experiments, metrics, artifacts, model versions. No I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Alert",
    "AliasEvent",
    "ArtifactInfo",
    "Cycle",
    "CycleState",
    "DatasetInput",
    "Experiment",
    "LoggedModel",
    "Metric",
    "ModelVersion",
    "Run",
    "RunContext",
    "RunStatus",
    "StoredVerdict",
    "to_datetime",
]


def to_datetime(ts: float | None) -> datetime | None:
    """Seconds since the epoch to an aware UTC datetime (None stays None).

    Example:
        >>> to_datetime(0).isoformat()
        '1970-01-01T00:00:00+00:00'
    """
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


class RunStatus(enum.StrEnum):
    """Life cycle of a run.

    RUNNING while the block runs; FINISHED when it ends normally; FAILED when an exception
    left it (the traceback is stored); KILLED on SIGTERM or Ctrl-C; LOST when its process
    stopped sending heartbeats.

    Example:
        >>> RunStatus("FINISHED").is_terminal
        True
    """

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    LOST = "LOST"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING

    def __str__(self) -> str:
        return self.value


class CycleState(enum.StrEnum):
    """Where a continuous-training cycle is.

    It works through TRAINING → VALIDATING → PROMOTING → VERIFYING and finishes DONE (the candidate
    serves), REJECTED (it failed the gate), NO_CHANGE (retraining gave a model already registered),
    ROLLED_BACK (it failed to load or to be served after promotion), FAILED (an error), or MERGED
    (a trigger that fired together with another and was handled by that one's cycle).

    Example:
        >>> CycleState("no_change").finished, CycleState.TRAINING.finished
        (True, False)
    """

    TRAINING = "training"
    VALIDATING = "validating"
    PROMOTING = "promoting"
    VERIFYING = "verifying"
    DONE = "done"
    REJECTED = "rejected"
    NO_CHANGE = "no_change"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    MERGED = "merged"

    @property
    def finished(self) -> bool:
        return self in _FINISHED_CYCLES

    def __str__(self) -> str:
        return self.value


_FINISHED_CYCLES = frozenset({CycleState.DONE, CycleState.REJECTED, CycleState.NO_CHANGE, CycleState.ROLLED_BACK,
                              CycleState.FAILED, CycleState.MERGED})


@dataclass(frozen=True)
class Experiment:
    """A named group of runs.

    Example:
        >>> Experiment(id=1, name="churn", created_at=0.0).name
        'churn'
    """

    id: int
    name: str
    created_at: float
    run_count: int | None = None


@dataclass(frozen=True)
class Metric:
    """One logged point of a metric.

    Example:
        >>> Metric("loss", 0.5, step=3, timestamp=0.0).step
        3
    """

    key: str
    value: float
    step: int
    timestamp: float


@dataclass(frozen=True)
class ArtifactInfo:
    """A file attached to a run: its name within the run and the sha256 of its bytes.

    Example:
        >>> ArtifactInfo("plots/roc.png", "ab" * 32, 10).path
        'plots/roc.png'
    """

    path: str
    digest: str
    size: int
    created_at: float = 0.0


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a run used: its fingerprint, size and schema, for lineage.

    Example:
        >>> DatasetInput("train", "train", "f" * 64, 100, (("x", "float64"),)).rows
        100
    """

    name: str
    role: str
    fingerprint: str
    rows: int | None
    columns: tuple[tuple[str, str], ...] = ()
    source: str | None = None


@dataclass(frozen=True)
class RunContext:
    """What is needed to reproduce a run: code version, command, interpreter and packages.

    Example:
        >>> RunContext(git_commit="abc", git_dirty=False).git_commit
        'abc'
    """

    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    git_root: str | None = None
    command: tuple[str, ...] = ()
    cwd: str | None = None
    python: str | None = None
    platform: str | None = None
    environment_id: str | None = None
    seed: int | None = None
    session_id: str | None = None
    session_seq: int | None = None


@dataclass(frozen=True)
class Run:
    """Everything recorded about one run.

    ``metrics`` holds each metric's latest value (highest step, then latest time);
    ``get_metric_history`` returns every point.

    Example:
        >>> r = Run(id="1" * 32, experiment_id=1, experiment="churn", name="lr",
        ...         status=RunStatus.FINISHED, start_time=0.0)
        >>> r.status.is_terminal
        True
    """

    id: str
    experiment_id: int
    experiment: str
    name: str | None
    status: RunStatus
    start_time: float
    end_time: float | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    artifacts: tuple[ArtifactInfo, ...] = ()
    inputs: tuple[DatasetInput, ...] = ()
    parent_id: str | None = None
    error: str | None = None
    context: RunContext = field(default_factory=RunContext)
    reproduces: str | None = None
    heartbeat_at: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None while it runs."""
        return None if self.end_time is None else self.end_time - self.start_time

    @property
    def started(self) -> datetime:
        return to_datetime(self.start_time)  # type: ignore[return-value]

    @property
    def ended(self) -> datetime | None:
        return to_datetime(self.end_time)


@dataclass(frozen=True)
class LoggedModel:
    """A model package logged as artifacts of a run.

    Example:
        >>> LoggedModel("a" * 32, "model", "b" * 64, "sklearn").uri
        'runs:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/model'
    """

    run_id: str
    name: str
    hash: str  # sha256 of the package's manifest.json
    flavour: str

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.name}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: which run made it and the hash of its package.

    Example:
        >>> v = ModelVersion("churn", 3, "a" * 32, "runs:/aaa/model", "model", "b" * 64, "sklearn", 0.0)
        >>> v.uri
        'models:/churn/3'
    """

    name: str
    version: int
    run_id: str
    source: str
    artifact_path: str
    hash: str
    flavour: str
    created_at: float
    created_by: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, tz=UTC)


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias, as the audit log keeps it: who, when, from which version to which, why.

    ``action`` is ``set``, ``promote``, ``rollback`` or ``delete``; ``verdict_id`` names the
    stored verdict that allowed a promotion, and ``forced`` says a failing or missing verdict was overridden.
    """

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    actor: str
    at: float
    reason: str | None = None
    verdict_id: str | None = None
    forced: bool = False

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.at, tz=UTC)


@dataclass(frozen=True)
class Alert:
    """An alert as the store keeps it: raised when its rule's condition started, resolved when it stopped.

    ``rule`` is ``drift``, ``performance``, ``quality`` or one the controller raises (``cycle_failed``,
    ``load_failure``, ``server_unreachable``); ``delivery`` records how its latest event reached the webhook.
    """

    id: str
    model: str
    rule: str
    state: str  # firing | resolved
    message: str
    raised_at: float
    window_start: float | None = None
    resolved_at: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    delivery: Mapping[str, Any] | None = None

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "rule": self.rule, "state": self.state, "window_start": self.window_start,
                "raised_at": self.raised_at, "resolved_at": self.resolved_at, "message": self.message,
                "details": dict(self.details), "delivery": dict(self.delivery) if self.delivery is not None else None}


@dataclass(frozen=True)
class Cycle:
    """One continuous-training cycle: what triggered it, where it is, and what it made.

    ``trigger_key`` is unique per project (one cycle per trigger); ``detail`` holds what the trigger saw,
    the attempt number, the data fingerprint, the gate's data and, once finished, why it ended so.
    """

    id: str
    project: str
    trigger: str
    trigger_key: str
    state: CycleState
    started_at: float
    updated_at: float
    owner: str | None = None
    lease_until: float | None = None
    finished_at: float | None = None
    alert_id: str | None = None
    run_id: str | None = None
    model: str | None = None
    version: int | None = None
    verdict_id: str | None = None
    alias_event_id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def attempt(self) -> int:
        """1 for a trigger's first cycle, 2 for its first retry, …"""
        return int(self.detail.get("attempt", 1))

    @property
    def why(self) -> str:
        """One line on how it ended (or what started it, while it runs)."""
        d = self.detail
        return str(d.get("error") or "; ".join(d.get("failures") or []) or d.get("reason") or d.get("warning")
                   or (d.get("trigger") or {}).get("message") or "")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "trigger": self.trigger, "trigger_key": self.trigger_key,
                "state": str(self.state), "started_at": self.started_at, "updated_at": self.updated_at, "owner": self.owner,
                "lease_until": self.lease_until, "finished_at": self.finished_at, "alert_id": self.alert_id,
                "run_id": self.run_id, "model": self.model, "version": self.version, "verdict_id": self.verdict_id,
                "alias_event_id": self.alias_event_id, "detail": dict(self.detail)}


@dataclass(frozen=True)
class StoredVerdict:
    """A gate verdict as stored with a model version: each rule's evidence, the policy, and what it was compared with."""

    id: str
    name: str
    version: int
    passed: bool
    created_at: float
    run_id: str | None = None
    rules: tuple[Mapping[str, Any], ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    baseline_alias: str | None = None
    baseline_version: int | None = None
    rows: int = 0

    def failures(self) -> list[str]:
        return [f"{r.get('rule')}: {r.get('detail')}" for r in self.rules if not r.get("passed")]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version, "passed": self.passed, "created_at": self.created_at,
                "run_id": self.run_id, "rules": [dict(r) for r in self.rules], "policy": dict(self.policy),
                "baseline": self.baseline, "baseline_alias": self.baseline_alias, "baseline_version": self.baseline_version,
                "rows": self.rows}
