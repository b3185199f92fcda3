"""The metadata store protocol and the batch of writes it applies in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, Protocol, runtime_checkable

from typing_extensions import TypedDict  # pydantic reads typing's own TypedDict only from Python 3.12

from modelcycle.entities import DatasetInput, Experiment, Metric, Run, RunContext, RunStatus

__all__ = ["MetadataStore", "NewAlert", "NewRun", "RunPage", "StoredWindow", "WriteBatch"]


class NewAlert(TypedDict):
    """An alert as raised: its id, model, rule, when, the message and (optionally) its window and details."""

    id: str
    model: str
    rule: str
    raised_at: float
    message: str
    window_start: NotRequired[float | None]
    details: NotRequired[dict[str, Any]]


class StoredWindow(TypedDict):
    """One summarised monitoring window as stored: its start, rows, the files it was computed from (``sources``), its
    profile (serialised sketches) and its summary."""

    start: float
    rows: int
    sources: str
    profile: NotRequired[bytes | None]
    summary: dict[str, Any]
    computed_at: float


@dataclass
class NewRun:
    """Everything known when a run starts.

    Example:
        >>> NewRun(id="a" * 32, experiment_id=1, name="first", start_time=0.0).parent_id is None
        True
    """

    id: str
    experiment_id: int
    name: str | None
    start_time: float
    parent_id: str | None = None
    context: RunContext = field(default_factory=RunContext)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    reproduces: str | None = None
    environment: Mapping[str, Any] | None = None  # stored once under context.environment_id


@dataclass
class WriteBatch:
    """Writes gathered from the log buffer; applied atomically, in this order.

    New runs come first, so a run started and ended between two flushes costs one transaction.
    Rows are plain tuples so building a batch costs nothing on the logging hot path:
    metrics ``(run_id, key, value, step, timestamp)``; params and tags ``(run_id, key, value)``;
    artifacts ``(run_id, path, digest, size, created_at)``; inputs ``(run_id, DatasetInput)``;
    updates ``(run_id, {column: value})`` for status, end time, error and seed.

    Example:
        >>> batch = WriteBatch(metrics=[("a" * 32, "loss", 0.5, 0, 0.0)])
        >>> bool(batch), len(batch)
        (True, 1)
    """

    runs: list[NewRun] = field(default_factory=list)
    metrics: list[tuple[str, str, float, int, float]] = field(default_factory=list)
    params: list[tuple[str, str, str]] = field(default_factory=list)
    tags: list[tuple[str, str, str]] = field(default_factory=list)
    artifacts: list[tuple[str, str, str, int, float]] = field(default_factory=list)
    inputs: list[tuple[str, DatasetInput]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.metrics or self.params or self.tags or self.artifacts or self.inputs or self.updates)

    def __len__(self) -> int:
        return len(self.runs) + len(self.metrics) + len(self.params) + len(self.tags) + len(self.artifacts) + len(self.inputs) + len(self.updates)


# the summary fields of a search result row, in the order RunPage.rows holds them
PAGE_FIELDS = ("id", "experiment_id", "name", "status", "start_time", "end_time", "heartbeat_at", "parent_id",
               "reproduces", "experiment")


@dataclass(frozen=True)
class RunPage:
    """A page of search results held column-wise: a DataFrame is built from it without a ``Run`` per row.

    ``rows`` are tuples in ``PAGE_FIELDS`` order (status as its stored text); ``params``, ``metrics`` and
    ``tags`` hold one mapping per row.

    Example:
        >>> page = RunPage([("a" * 32, 1, "lr", "FINISHED", 0.0, 1.0, None, None, None, "churn")],
        ...                [{"C": "1"}], [{"auc": 0.9}], [{}])
        >>> run, = page.runs()
        >>> run.experiment, run.status.value, run.metrics["auc"]
        ('churn', 'FINISHED', 0.9)
    """

    rows: Sequence[Sequence[Any]]
    params: Sequence[Mapping[str, str]]
    metrics: Sequence[Mapping[str, float]]
    tags: Sequence[Mapping[str, str]]

    def __len__(self) -> int:
        return len(self.rows)

    def runs(self) -> list[Run]:
        status = {s.value: s for s in RunStatus}
        return [
            Run(id=row[0], experiment_id=row[1], experiment=row[9], name=row[2], status=status[row[3]],
                start_time=row[4], end_time=row[5], heartbeat_at=row[6], parent_id=row[7], reproduces=row[8],
                params=params, metrics=metrics, tags=tags, context=_NO_CONTEXT)
            for row, params, metrics, tags in zip(self.rows, self.params, self.metrics, self.tags, strict=True)
        ]

    @classmethod
    def of(cls, runs: Sequence[Run]) -> RunPage:
        return cls(
            [(r.id, r.experiment_id, r.name, r.status.value, r.start_time, r.end_time, r.heartbeat_at, r.parent_id,
              r.reproduces, r.experiment) for r in runs],
            [r.params for r in runs], [r.metrics for r in runs], [r.tags for r in runs],
        )


_NO_CONTEXT = RunContext()


@runtime_checkable
class MetadataStore(Protocol):
    """Runs, experiments and their records. Every implementation runs the conformance suite
    in ``tests/store/test_metadata_conformance.py``."""

    uri: str

    def get_or_create_experiment(self, name: str) -> Experiment: ...

    def get_experiment(self, name: str) -> Experiment: ...

    def list_experiments(self, counts: bool = True) -> list[Experiment]: ...

    def create_run(self, run: NewRun) -> None: ...

    def write(self, batch: WriteBatch) -> None: ...

    def heartbeat(self, run_ids: Iterable[str], now: float) -> None: ...

    def mark_lost(self, older_than: float) -> int:
        """Mark RUNNING runs whose last heartbeat is before ``older_than`` as LOST; return how many."""
        ...

    def get_run(self, run_id: str) -> Run: ...

    def resolve_run_id(self, prefix: str) -> str: ...

    def search_runs(
        self,
        experiments: list[str] | None = None,
        filter: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Run]: ...

    def search_page(
        self,
        experiments: list[str] | None = None,
        filter: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> RunPage:
        """What ``search_runs`` finds, column-wise."""
        ...

    def count_runs(self, experiments: list[str] | None = None, filter: str | None = None) -> int:
        """How many runs ``search_runs`` finds without a limit."""
        ...

    def run_keys(self, experiments: list[str] | None = None, sample: int = 1000) -> dict[str, list[str]]:
        """The param, metric and tag keys of the newest and oldest ``sample`` runs."""
        ...

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def metric_histories(self, run_ids: list[str], key: str) -> dict[str, tuple[list[int], list[float]]]:
        """``(steps, values)`` of one metric for each of up to 1,000 runs."""
        ...

    def get_environment(self, environment_id: str) -> dict[str, Any]: ...

    def delete_run(self, run_id: str, dry_run: bool = False) -> list[str]:
        """Delete a run and its descendants; returns their ids. ``dry_run`` only checks that it may (and says what it would delete).

        Raises:
            NotFoundError: no such run.
            ConflictError: the run or a descendant made a registered model version.
        """
        ...

    def referenced_digests(self) -> set[str]: ...

    def close(self) -> None: ...
