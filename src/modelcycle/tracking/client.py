"""The tracking client: starts runs, queues what they log, and reads runs back."""

from __future__ import annotations

import atexit
import bisect
import contextlib
import contextvars
import functools
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.entities import Experiment, LoggedModel, Run, RunContext, RunStatus
from modelcycle.errors import (
    ConflictError,
    InvalidInputError,
    ModelcycleError,
    ModelcycleWarning,
    NotFoundError,
    StoreRefusedError,
    UnsafePathError,
)
from modelcycle.settings import Settings
from modelcycle.store.artifacts.base import safe_artifact_path
from modelcycle.store.metadata.base import RunPage
from modelcycle.tracking.run import ActiveRun
from modelcycle.tracking.validation import check_key, check_text, param_value, tag_value

if TYPE_CHECKING:
    import pandas as pd

    from modelcycle.data.profile import Profile
    from modelcycle.store.artifacts.base import ArtifactStore
    from modelcycle.store.metadata.base import MetadataStore
    from modelcycle.tracking.buffer import LogBuffer

__all__ = ["Client", "GcReport"]

DIFF_ARTIFACT = "modelcycle/code.diff"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _folders(name: str) -> list[str]:
    """The folders an artifact name needs: ``["a", "a/b"]`` for ``"a/b/c"``."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class _ArtifactNames:
    """The artifact names one run was given through this client (queued or stored), and the folders they need."""

    __slots__ = ("files", "folders")

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.folders: Counter[str] = Counter()

    def add(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.files:
                self.files.add(name)
                self.folders.update(_folders(name))

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.files:
                self.files.discard(name)
                self.folders.subtract(_folders(name))
                self.folders += Counter()  # drops the folders no name needs any more


def _clash(run_id: str, stored: str, new: str) -> InvalidInputError:
    """A file and a folder of the same name cannot both exist where the artifacts are downloaded."""
    if new.startswith(stored + "/"):
        return InvalidInputError(f"run {run_id} already has an artifact {stored!r}; {new!r} would need a folder of that name "
                                 "— choose another name")
    return InvalidInputError(f"run {run_id} already has an artifact {stored!r} in a folder named {new!r}; {new!r} cannot also be "
                             "a file — choose another name")


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed (or would remove, on a dry run).

    Example:
        >>> GcReport(removed=2, freed_bytes=10, kept=5, dry_run=True).removed
        2
    """

    removed: int
    freed_bytes: int
    kept: int
    dry_run: bool


class Client:
    """Entry point to tracking. ``mc.log_metric`` and friends delegate to a default Client.

    Args:
        settings: where the stores are; ``Settings.from_env()`` when None.

    Example:
        >>> import modelcycle as mc, tempfile
        >>> client = mc.Client(mc.Settings.for_home(tempfile.mkdtemp(), capture=False))
        >>> with client.start_run(experiment="churn", params={"model": "rf"}) as run:
        ...     client.log_metric("auc", 0.8)
        >>> list(client.search_runs(experiment="churn")["params.model"])
        ['rf']
    """

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self._lock = threading.RLock()
        self._store: MetadataStore | None = None
        self._artifacts: ArtifactStore | None = None
        self._buffer: LogBuffer | None = None
        self._live: dict[str, ActiveRun] = {}
        self._stack: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
            f"modelcycle_runs_{id(self)}", default=()
        )
        self._experiment = self.settings.experiment
        self._session = uuid.uuid4().hex
        self._seq = 0
        self._seed: int | None = None
        self._warned_autostart = False
        self._git: Any = None
        self._envs_stored: set[str] = set()
        self._diffs: dict[bytes, tuple[str, int]] = {}
        self._hooks = False
        self._uncaught: BaseException | None = None
        self._reproduces: tuple[str, int | None] | None = None
        self._closed = False
        self._names: dict[str, _ArtifactNames] = {}
        self._names_lock = threading.Lock()
        self._lost_checked = 0.0
        self._validations = 0

    def __repr__(self) -> str:
        return f"<modelcycle.Client store={self.settings.store_uri!r}>"

    # --- stores -----------------------------------------------------------------------
    @property
    def store(self) -> MetadataStore:
        """The metadata store, opened (and migrated) on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from modelcycle.store import open_metadata_store

                    options: dict[str, Any] = {"busy_timeout": self.settings.busy_timeout}
                    if self.settings.store_uri.startswith("sqlite"):
                        options["sqlite_sync"] = self.settings.sqlite_sync
                    if self.settings.store_uri.startswith(("http://", "https://")):
                        options["token"] = self.settings.tracking_token
                    self._store = open_metadata_store(self.settings.store_uri, **options)
        return self._store

    @property
    def artifact_store(self) -> ArtifactStore:
        if self._artifacts is None:
            with self._lock:
                if self._artifacts is None:
                    from modelcycle.store import open_artifact_store

                    remote = self.settings.artifact_uri.startswith(("http://", "https://"))
                    options = {"token": self.settings.tracking_token, "busy_timeout": self.settings.busy_timeout} if remote else {}
                    self._artifacts = open_artifact_store(self.settings.artifact_uri, **options)
        return self._artifacts

    @property
    def buffer(self) -> LogBuffer:
        if self._buffer is None:
            with self._lock:
                if self._buffer is None:
                    from modelcycle.tracking.buffer import LogBuffer

                    self._buffer = LogBuffer(
                        self.store,
                        self.settings.flush_interval,
                        self.settings.heartbeat_interval,
                        lambda: [i for i, r in list(self._live.items()) if r._owned],
                    )
        return self._buffer

    # --- runs -------------------------------------------------------------------------
    def set_experiment(self, name: str) -> Experiment:
        """Make ``name`` the experiment of runs that name none; created if needed."""
        check_key(name, "experiment name")
        exp = self.store.get_or_create_experiment(name)
        self._experiment = name
        return exp

    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: str | ActiveRun | Run | None = None,
        activate: bool = True,
    ) -> ActiveRun:
        """Start a run; use it as a context manager.

        Args:
            experiment: experiment name; when None, the parent's experiment for a nested run, else the
                current default (``set_experiment``).
            name: run name; a friendly generated one when None.
            params: params to record at once.
            tags: tags to record at once.
            parent: parent run (id or run) for nested runs; the active run when None, unless that run
                was started by logging outside any run: that one is ended, and this run is top-level.
            activate: False starts the run without making it the active run here
                (``activated(run)`` makes it active where the work happens, e.g. in another thread).

        Returns:
            The running run.
        """
        from modelcycle.store.metadata.base import NewRun
        from modelcycle.tracking.names import run_name

        if experiment:
            check_key(experiment, "experiment name")
        if name is not None and not isinstance(name, str):
            raise InvalidInputError(f"run name must be a string, not {type(name).__name__}")
        checked_params = {check_key(k, "param"): param_value(k, v) for k, v in (params or {}).items()}
        checked_tags = {check_key(k, "tag"): tag_value(k, v) for k, v in (tags or {}).items()}
        name = check_text(name, "the run's name") if name else run_name()
        if parent is None and activate:
            self._end_implicit()
        parent_id, parent_experiment = self._parent(parent)
        if not experiment and parent_id is not None and parent_experiment is None:
            parent_experiment = self.store.get_run(parent_id).experiment
        exp_name = experiment or parent_experiment or self._experiment
        check_key(exp_name, "experiment name")
        exp = self.store.get_or_create_experiment(exp_name)
        now = time.time()
        run_id = uuid.uuid4().hex
        with self._lock:
            seq = self._seq
            self._seq += 1
        context, environment, diff = self._capture(seq)
        self._ensure_hooks()
        # Queued like everything else: a short run costs one transaction, at its end.
        self.buffer.runs.append(
            NewRun(
                id=run_id,
                experiment_id=exp.id,
                name=name,
                start_time=now,
                parent_id=parent_id,
                context=context,
                params=checked_params,
                tags=checked_tags,
                reproduces=self._reproduced_run(seq),
                environment=environment,
            )
        )
        if environment is not None and context.environment_id:
            self._envs_stored.add(context.environment_id)
        run = ActiveRun(self, run_id, exp_name, name, parent_id)
        run._params.update(checked_params)
        if diff is not None:
            with self._names_lock:
                self._names.setdefault(run_id, _ArtifactNames()).add([DIFF_ARTIFACT])
            self.buffer.artifacts.append((run_id, DIFF_ARTIFACT, diff[0], diff[1], now))
        with self._lock:
            self._live[run_id] = run
        if activate:
            self._stack.set((*self._stack.get(), run))
        self.buffer.ensure_started()
        return run

    @contextlib.contextmanager
    def activated(self, run: ActiveRun) -> Iterator[ActiveRun]:
        """Make ``run`` the active run in this context (thread) for the duration of the block."""
        token = self._stack.set((*self._stack.get(), run))
        try:
            yield run
        finally:
            self._stack.reset(token)

    def resume_run(self, run_id: str) -> ActiveRun:
        """A handle to log into a run that is still running, started elsewhere (another process)."""
        return self._handle(run_id)

    def _parent(self, parent: str | ActiveRun | Run | None) -> tuple[str | None, str | None]:
        """The parent's id and, when known without a read, its experiment.

        With no ``parent`` it is the active run, unless that run was started implicitly (by logging
        outside any run): an explicit run is never the child of an implicit one.
        """
        if parent is None:
            active = self.active_run()
            if active is None or active._implicit:
                return None, None
            return active.id, active.experiment
        if isinstance(parent, ActiveRun | Run):
            return parent.id, parent.experiment
        if isinstance(parent, str):
            live = self._live.get(parent)
            return (live.id, live.experiment) if live is not None else (self.store.resolve_run_id(parent), None)
        raise InvalidInputError(f"parent must be a run or a run id, not {type(parent).__name__}")

    def _end_implicit(self) -> None:
        """End the run that logging outside any run started here: the user now starts runs of their own."""
        for run in self._stack.get():
            if run._implicit and not run._ended:
                run.end(RunStatus.FINISHED)

    def active_run(self) -> ActiveRun | None:
        """The innermost run started in this context (or, from another thread, in this process)."""
        for run in reversed(self._stack.get()):
            if not run._ended:
                return run
        with self._lock:
            for run in reversed(self._live.values()):
                if not run._ended:
                    return run
        return None

    def _current(self) -> ActiveRun:
        stack = self._stack.get()
        if stack and not stack[-1]._ended:
            return stack[-1]
        run = self.active_run()
        if run is not None:
            return run
        if not self._warned_autostart:
            self._warned_autostart = True
            warnings.warn(
                "no run is active, so modelcycle started one; use `with mc.start_run():` to name and end it",
                ModelcycleWarning,
                stacklevel=4,
            )
        run = self.start_run()
        run._implicit = True
        return run

    def _handle(self, run_id: str | None) -> ActiveRun:
        if run_id is None:
            return self._current()
        live = self._live.get(run_id)
        if live is not None:
            return live
        run = self.get_run(run_id)
        if run.status.is_terminal:
            raise InvalidInputError(f"run {run.id} has ended ({run.status.value}); start a new run to log more")
        handle = ActiveRun(self, run.id, run.experiment, run.name, run.parent_id, owned=False)
        handle._params.update(run.params)
        return handle

    def end_run(self, status: RunStatus | str = RunStatus.FINISHED, run_id: str | None = None) -> None:
        """End the active run (or ``run_id``)."""
        run = self._live.get(run_id) if run_id else self.active_run()
        if run is None:
            if run_id:
                raise NotFoundError(f"run {run_id} is not running in this process")
            return
        run.end(status)

    def _end(self, run: ActiveRun, status: RunStatus, error: str | None = None) -> None:
        if run._ended:
            return
        run._ended = True
        run.status = status
        values: dict[str, Any] = {"status": status.value, "end_time": time.time()}
        if error:
            values["error"] = error[-20000:]
        buffer = self.buffer
        buffer.updates.append((run.id, values))
        with self._lock:
            self._live.pop(run.id, None)
        with self._names_lock:
            self._names.pop(run.id, None)
        stack = self._stack.get()
        if run in stack:
            self._stack.set(tuple(r for r in stack if r is not run))
        try:
            buffer.flush()
        except StoreRefusedError:
            pass  # a run deleted meanwhile: the buffer said so once, and the other runs' values are written

    # --- logging (delegates used by the module-level functions) -----------------------
    def log_param(self, key: str, value: Any, *, run_id: str | None = None) -> None:
        self._handle(run_id).log_param(key, value)

    def log_params(self, params: Mapping[str, Any], *, run_id: str | None = None) -> None:
        self._handle(run_id).log_params(params)

    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: float | None = None,
                   *, run_id: str | None = None) -> None:
        (self._current() if run_id is None else self._handle(run_id)).log_metric(key, value, step, timestamp)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None,
                    *, run_id: str | None = None) -> None:
        self._handle(run_id).log_metrics(metrics, step, timestamp)

    def set_tag(self, key: str, value: Any, *, run_id: str | None = None) -> None:
        self._handle(run_id).set_tag(key, value)

    def set_tags(self, tags: Mapping[str, Any], *, run_id: str | None = None) -> None:
        self._handle(run_id).set_tags(tags)

    def log_artifact(self, local_path: str | os.PathLike[str], name: str | None = None, *, run_id: str | None = None) -> str:
        return self._handle(run_id).log_artifact(local_path, name)

    def log_text(self, text: str, name: str, *, run_id: str | None = None) -> str:
        return self._handle(run_id).log_text(text, name)

    def log_dict(self, data: Any, name: str, *, run_id: str | None = None) -> str:
        return self._handle(run_id).log_dict(data, name)

    def log_figure(self, figure: Any, name: str, *, run_id: str | None = None) -> str:
        return self._handle(run_id).log_figure(figure, name)

    def log_table(self, table: Any, name: str, *, run_id: str | None = None) -> str:
        return self._handle(run_id).log_table(table, name)

    def log_dataset(self, data: Any, name: str = "dataset", role: str = "input", profile: bool = True,
                    *, run_id: str | None = None) -> str:
        return self._handle(run_id).log_dataset(data, name, role, profile)

    def log_model(self, model: Any, name: str = "model", *, run_id: str | None = None, **options: Any) -> LoggedModel:
        """Store a model package in the active run (or ``run_id``); see :meth:`ActiveRun.log_model`."""
        return self._handle(run_id).log_model(model, name, **options)

    @contextlib.contextmanager
    def _artifact_names(self, run: ActiveRun, names: Sequence[str]) -> Iterator[None]:
        """Claim ``names`` (normalised) for ``run`` while the block stores them.

        A file and a folder of one name cannot both exist on disk, so ``a`` and ``a/b`` cannot both
        be artifacts of a run: the second is refused here, before anything is stored, whichever way
        it is logged. Names are checked against those this client gave the run (queued or not) and
        against the store's (logged by other processes), with a few index probes. If the block
        fails, the names it did not store are given back.

        Raises:
            InvalidInputError: naming the artifact the run already has and the new name.
        """
        new = self._claim_artifact_names(run.id, names)
        try:
            yield
        except BaseException:
            with self._names_lock:
                known = self._names.get(run.id)
                if known is not None:
                    known.remove(new)
            raise

    def _claim_artifact_names(self, run_id: str, names: Sequence[str]) -> list[str]:
        for name in names:
            bad = _CONTROL.search(name)
            if bad is not None:  # no file system wants them, and printed they can rewrite a terminal
                raise UnsafePathError(f"artifact name {name!r} contains the control character {bad.group()!r}; "
                                      "use printable characters")
        with self._names_lock:  # check and record at once: two threads cannot claim 'a' and 'a/b' together
            known = self._names.setdefault(run_id, _ArtifactNames())
            batch = _ArtifactNames()
            for name in names:
                for folder in _folders(name):
                    if folder in known.files or folder in batch.files:
                        raise _clash(run_id, folder, name)
                if known.folders[name] or batch.folders[name]:
                    raise _clash(run_id, next(f for f in (*known.files, *batch.files) if f.startswith(name + "/")), name)
                batch.add([name])
            new = sorted(batch.files - known.files)
            check = getattr(self.store, "artifact_clash", None)  # stores that cannot tell are checked in this process only
            found = check(run_id, new) if check is not None and new else None
            if found is not None:
                raise _clash(run_id, found[0], found[1])
            known.add(new)
            return new

    def _put_file(self, run: ActiveRun, path: Path, name: str) -> str:
        digest, size = self.artifact_store.put_file(path)
        self.buffer.artifacts.append((run.id, name, digest, size, time.time()))
        return name

    def _put_bytes(self, run: ActiveRun, data: bytes, name: str) -> str:
        digest, size = self.artifact_store.put_bytes(data)
        self.buffer.artifacts.append((run.id, name, digest, size, time.time()))
        return name

    def flush(self) -> None:
        """Write everything queued so far to the store."""
        if self._buffer is not None:
            self._buffer.flush()

    # --- reproducibility --------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Record ``seed`` on the live runs and on every run started later in this process."""
        self._seed = seed
        for run in list(self._live.values()):
            self.buffer.updates.append((run.id, {"seed": seed}))

    def _capture(self, seq: int) -> tuple[RunContext, dict[str, Any] | None, tuple[str, int] | None]:
        if not self.settings.capture:
            return RunContext(seed=self._seed, session_id=self._session, session_seq=seq), None, None
        from modelcycle.tracking.capture import GitProbe, process_info

        info = process_info()
        git = GitProbe.shared(info.cwd, exclude=self.settings.home).state()
        diff = None
        cwd = info.cwd
        if git is not None:
            try:
                cwd = Path(info.cwd).resolve().relative_to(git.root).as_posix()
            except ValueError:
                pass
            if git.diff:
                diff = self._diffs.get(git.diff)
                if diff is None:  # identical diffs are stored once
                    diff = self.artifact_store.put_bytes(git.diff)
                    self._diffs = {git.diff: diff}
        context = RunContext(
            git_commit=git.commit if git else None,
            git_branch=git.branch if git else None,
            git_dirty=git.dirty if git else None,
            git_root=git.root if git else None,
            command=info.command,
            cwd=cwd,
            python=info.python,
            platform=info.platform,
            environment_id=info.environment_id,
            seed=self._seed,
            session_id=self._session,
            session_seq=seq,
        )
        environment = None if info.environment_id in self._envs_stored else info.environment
        return context, environment, diff

    def _reproduced_run(self, seq: int) -> str | None:
        """With MODELCYCLE_REPRODUCES set, link the run started in the same order as the original."""
        target = self.settings.reproduces
        if not target:
            return None
        if self._reproduces is None:
            try:
                original = self.store.get_run(self.store.resolve_run_id(target))
                self._reproduces = (original.id, original.context.session_seq)
            except NotFoundError:
                self._reproduces = (target, None)
        run_id, original_seq = self._reproduces
        return run_id if original_seq in (None, seq) else None

    # --- reading ----------------------------------------------------------------------
    def _fresh(self) -> None:
        """Before a read: write what is queued, and mark silent runs LOST (at most once a second)."""
        if self._buffer is not None and self._buffer.pending():
            self._buffer.flush()
        now = time.time()
        if now - self._lost_checked >= 1.0:
            self._lost_checked = now
            self.store.mark_lost(now - self.settings.heartbeat_timeout)

    def get_run(self, run_id: str) -> Run:
        """Everything recorded about a run; ``run_id`` may be a unique prefix."""
        self._fresh()
        return self.store.get_run(self.store.resolve_run_id(run_id))

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = 100,
        *,
        output: str = "frame",
        as_frame: bool = True,
    ) -> pd.DataFrame | list[Run]:
        """Find runs; one row per run with ``metrics.*``, ``params.*`` and ``tags.*`` columns.

        Args:
            experiment: one name or several; all experiments when None.
            filter: e.g. ``"metrics.auc > 0.8 and params.model = 'rf'"``.
            order_by: e.g. ``["metrics.auc DESC"]``; newest first when None.
            limit: at most this many runs (None for all).
            output: ``"frame"`` (a pandas DataFrame) or ``"list"`` (``Run`` records, without importing
                pandas: the first search of a script is then about a second faster).
            as_frame: False is the same as ``output="list"``.
        """
        if output not in ("frame", "list"):
            raise InvalidInputError(f"output must be 'frame' or 'list', not {output!r}")
        self._fresh()
        names = [experiment] if isinstance(experiment, str) else list(experiment) if experiment else None
        if names:
            for n in names:
                self.store.get_experiment(n)  # a clear error for a misspelt name
        page = self.store.search_page(
            names, filter, [order_by] if isinstance(order_by, str) else list(order_by or []), limit
        )
        return runs_frame(page) if as_frame and output == "frame" else page.runs()

    def get_metric_history(self, run_id: str, key: str) -> pd.DataFrame:
        """Every point of a metric: columns step, value, timestamp (UTC)."""
        import pandas as pd

        self._fresh()
        run_id = self.store.resolve_run_id(run_id)
        points = self.store.get_metric_history(run_id, key)
        if not points and key not in self.store.metric_keys(run_id):
            raise NotFoundError(f"run {run_id} has no metric {key!r}")
        return pd.DataFrame(
            {
                "step": pd.array([p.step for p in points], dtype="int64"),
                "value": pd.array([p.value for p in points], dtype="float64"),
                "timestamp": pd.to_datetime([p.timestamp for p in points], unit="s", utc=True),
            }
        )

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def get_environment(self, run: Run) -> dict[str, Any]:
        """Python, platform and package versions recorded for a run."""
        if not run.context.environment_id:
            return {}
        return self.store.get_environment(run.context.environment_id)

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The verified bytes of one artifact of a run."""
        run = self.get_run(run_id)
        name = safe_artifact_path(name)
        for art in run.artifacts:
            if art.path == name:
                return self.artifact_store.get_bytes(art.digest)
        raise NotFoundError(f"run {run.id} has no artifact {name!r}; it has: {', '.join(a.path for a in run.artifacts) or 'none'}")

    def get_profile(self, run_id: str, name: str = "dataset", role: str = "input") -> Profile:
        """The profile of a dataset a run logged with ``log_dataset``."""
        from modelcycle.data.profile import Profile
        from modelcycle.tracking.run import profile_artifact

        return Profile.from_bytes(self.read_artifact(run_id, profile_artifact(name, role)))

    def download_artifacts(self, run_id: str, name: str | None = None, dst: str | os.PathLike[str] | None = None) -> Path:
        """Copy a run's artifacts (all, one file, or one folder) into ``dst``, verifying each.

        Returns the local path of what was asked for.

        Raises:
            ConflictError: some artifacts could not be written (a file named like a folder another artifact
                needs, a file already in the way); it names each, and the others were written.
        """
        run = self.get_run(run_id)
        prefix = safe_artifact_path(name) if name else ""
        chosen = [a for a in run.artifacts if not prefix or a.path == prefix or a.path.startswith(prefix + "/")]
        if not chosen:
            raise NotFoundError(f"run {run.id} has no artifact {prefix!r}")
        root = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix=f"modelcycle-{run.id[:8]}-"))
        root = root.resolve()
        # Runs logged before names were checked may hold both 'a' and 'a/b': the folder wins, the file is skipped.
        paths = sorted(a.path for a in chosen)
        skipped: list[str] = []
        for art in chosen:
            i = bisect.bisect_left(paths, art.path + "/")
            if i < len(paths) and paths[i].startswith(art.path + "/"):
                skipped.append(f"{art.path!r} (the artifact {paths[i]!r} needs a folder of that name)")
                continue
            try:
                target = (root / safe_artifact_path(art.path)).resolve()
            except UnsafePathError as e:
                skipped.append(f"{art.path!r} ({e})")
                continue
            if root not in target.parents:
                raise InvalidInputError(f"artifact {art.path!r} would be written outside {root}")
            try:
                self.artifact_store.download(art.digest, target)
            except OSError as e:  # a file or folder already in the way, no permission, a full disk: say which, go on
                skipped.append(f"{art.path!r} ({e.strerror or type(e).__name__}: {e.filename or target})")
        if skipped:
            raise ConflictError(f"run {run.id}: {len(skipped)} artifact(s) not downloaded: {'; '.join(skipped)}; "
                                f"the other {len(chosen) - len(skipped)} are in {root}")
        return root / prefix if prefix else root

    def delete_run(self, run_id: str, dry_run: bool = False) -> list[str]:
        """Delete a run, its child runs and their records (artifact bytes go at the next ``gc``); returns the deleted ids.

        With ``dry_run``, nothing is deleted: the checks run (the run exists, no registered model version
        lives in it or its children) and the ids that would go are returned.
        """
        return self.store.delete_run(run_id, dry_run)

    def gc(self, dry_run: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        """Remove artifact blobs that no run refers to.

        Blobs younger than ``grace_seconds`` are kept: a process may have written one and not
        yet recorded it.
        """
        self.flush()
        referenced = self.store.referenced_digests()
        now = time.time()
        removed = freed = kept = 0
        for digest, mtime, size in list(self.artifact_store.iter_blobs()):
            if digest in referenced or now - mtime < grace_seconds:
                kept += 1
                continue
            removed += 1
            freed += size
            if not dry_run:
                self.artifact_store.delete(digest)
        return GcReport(removed, freed, kept, dry_run)

    # --- process hooks ----------------------------------------------------------------
    def _on_validation(self, report: Any) -> None:
        """Log a data validation made while a run of this process is active."""
        run = self.active_run()
        if run is None or not run._owned:
            return
        self._validations += 1
        name = f"validation/report-{self._validations}.json"
        run.log_dict(report.to_dict(), name)
        run.log_metrics({"validation.errors": len(report.errors), "validation.warnings": len(report.warnings)})
        run.set_tag("validation.passed", str(report.passed).lower())

    def _ensure_hooks(self) -> None:
        if self._hooks:
            return
        self._hooks = True
        from modelcycle import plugins

        plugins.subscribe("data.validated", self._on_validation)
        atexit.register(self._close_at_exit)
        previous_hook = sys.excepthook

        def excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
            self._uncaught = exc
            previous_hook(exc_type, exc, tb)

        sys.excepthook = excepthook
        if threading.current_thread() is threading.main_thread():
            try:
                previous = signal.getsignal(signal.SIGTERM)
                if previous is not signal.SIG_IGN:
                    signal.signal(signal.SIGTERM, lambda signum, frame: self._on_signal(signum, frame, previous))
            except (ValueError, OSError):
                pass
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self._before_fork, after_in_child=self._after_fork)

    def _on_signal(self, signum: int, frame: Any, previous: Any) -> None:
        try:
            self._end_all(RunStatus.KILLED, f"terminated by signal {signal.Signals(signum).name}")
        finally:
            if callable(previous):
                previous(signum, frame)
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

    def _before_fork(self) -> None:
        """Write what is queued, so a forked child finds its parent's runs in the store."""
        if self._buffer is not None and self._buffer.pending():
            self._flush_quietly()

    def _after_fork(self) -> None:
        """In a forked child: keep logging into the parent's runs, with a queue and connections of its own."""
        if self._buffer is not None:
            self._buffer.reset_after_fork()
        self._names_lock = threading.Lock()  # another thread may have held it at the fork
        store = self._store
        if store is not None and hasattr(store, "engine"):
            store.engine.dispose(close=False)
        for run in self._live.values():
            run._owned = False  # the parent process ends its runs
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            # multiprocessing ends its children with os._exit, which skips atexit, but runs its
            # own finalizers; it clears them right after this hook, so register from its hook.
            mp_util.register_after_fork(self, Client._flush_at_child_exit)

    def _flush_at_child_exit(self) -> None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, self._flush_quietly, exitpriority=100)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as e:
            warnings.warn(f"modelcycle could not write the last logged values: {e}", ModelcycleWarning, stacklevel=2)

    def _end_all(self, status: RunStatus, error: str | None = None) -> None:
        for run in reversed(list(self._live.values())):
            if run._owned:
                try:
                    self._end(run, status, error)
                except Exception as e:  # keep ending the others
                    warnings.warn(f"could not end run {run.id}: {e}", ModelcycleWarning, stacklevel=2)
        self.flush()

    def _close_at_exit(self) -> None:
        """``close`` as the interpreter exits: a store that refuses the last values is one line, not a traceback."""
        try:
            self.close()
        except ModelcycleError as e:
            print(f"modelcycle: the last logged values were not written: {e}", file=sys.stderr)

    def close(self) -> None:
        """End this process's live runs (FAILED if an exception is escaping), flush, stop the thread."""
        if self._closed:
            return
        self._closed = True
        from modelcycle import plugins

        plugins.unsubscribe("data.validated", self._on_validation)
        exc = self._uncaught
        if exc is None:
            status, error = RunStatus.FINISHED, None
        else:
            killed = isinstance(exc, KeyboardInterrupt)
            status = RunStatus.KILLED if killed else RunStatus.FAILED
            error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            self._end_all(status, error)
        finally:
            if self._buffer is not None:
                self._buffer.stop()


def runs_frame(runs: Sequence[Run] | RunPage) -> pd.DataFrame:
    """Runs as a DataFrame: one row per run, then ``metrics.*``, ``params.*``, ``tags.*`` columns.

    Text columns have the type pandas gives Arrow text (``str`` on pandas 3, ``object`` before), times are UTC.
    Every text column is a slice of one Arrow array and each column is made as the array pandas keeps it in: a
    table's conversion cost more than the rows did.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    page = runs if isinstance(runs, RunPage) else RunPage.of(runs)
    n = len(page)
    fields = list(zip(*page.rows, strict=True)) if page.rows else [()] * 10  # PAGE_FIELDS, column-wise
    names = ["run_id", "experiment", "name", "status", "parent_id"]
    values = [*fields[0], *fields[9], *fields[2], *fields[3], *fields[7]]
    for prefix, records in (("params", page.params), ("tags", page.tags)):
        for key in sorted(set().union(*records)):
            names.append(f"{prefix}.{key}")
            values.extend([d.get(key) for d in records])
    text = dict(zip(names, _text_columns(values, n, len(names)), strict=True))
    stamp, when = pa.timestamp("ns", tz="UTC"), pd.DatetimeTZDtype("ns", "UTC")

    def times(column: Sequence[float | None]) -> Any:
        return when.__from_arrow__(pa.array([None if v is None else int(v * 1e9) for v in column], stamp))

    cols: dict[str, Any] = {
        "run_id": text["run_id"],
        "experiment": text["experiment"],
        "name": text["name"],
        "status": text["status"],
        "start_time": times(fields[4]),
        "end_time": times(fields[5]),
        "parent_id": text["parent_id"],
    }
    nan = float("nan")
    metrics = sorted(set().union(*page.metrics))
    numbers = np.array([[d.get(key, nan) for d in page.metrics] for key in metrics], np.float64).reshape(len(metrics), n)
    try:  # pandas 3: the frame made from its blocks (the metrics one 2-D block), as pyarrow makes its frames
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:
        for key, column in zip(metrics, numbers, strict=True):
            cols[f"metrics.{key}"] = column
        for name in names[5:]:
            cols[name] = text[name]
        return pd.DataFrame(cols, index=pd.RangeIndex(n), copy=False)
    first = len(cols)
    blocks = [(array, np.array([i])) for i, array in enumerate(cols.values())]
    blocks.append((numbers, np.arange(first, first + len(metrics))))
    blocks.extend((text[name], np.array([first + len(metrics) + i])) for i, name in enumerate(names[5:]))
    columns = pd.Index([*cols, *(f"metrics.{key}" for key in metrics), *names[5:]])
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(n), columns=columns)


def _text_columns(values: list[str | None], n: int, k: int) -> list[Any]:
    """``k`` text columns of ``n`` rows from their values one column after the other, typed as pandas types Arrow
    text: asked of pandas once per setting of ``future.infer_string`` (pandas 3 keeps ``str`` columns in Arrow, pandas 2
    Python objects unless that option is on)."""
    import pandas as pd

    infer = not pd.__version__.startswith(("0.", "1.", "2.")) or bool(pd.get_option("future.infer_string"))
    return _text_maker(infer)(values, n, k)


@functools.cache
def _text_maker(_infer_string: bool) -> Callable[[list[str | None], int, int], list[Any]]:
    import numpy as np
    import pyarrow as pa

    large = pa.large_string()
    dtype = pa.table({"x": pa.array([], large)}).to_pandas()["x"].dtype
    if hasattr(dtype, "__from_arrow__"):
        def arrow(values: list[str | None], n: int, k: int) -> list[Any]:
            whole = pa.array(values, large)
            return [dtype.__from_arrow__(whole.slice(i * n, n)) for i in range(k)]

        return arrow

    def objects(values: list[str | None], n: int, k: int) -> list[Any]:
        whole = np.array(values, dtype=object) if values else np.empty(0, dtype=object)
        return [whole[i * n:(i + 1) * n] for i in range(k)]

    return objects
