"""The handle of a run being logged to: ``with mc.start_run() as run: run.log_metric(...)``."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.entities import LoggedModel, Run, RunStatus
from modelcycle.errors import ConflictError, InvalidInputError, ModelcycleError
from modelcycle.store.artifacts.base import safe_artifact_path
from modelcycle.tracking.validation import check_key, check_step, metric_value, param_value, tag_value

if TYPE_CHECKING:
    from modelcycle.tracking.client import Client

__all__ = ["ActiveRun", "profile_artifact"]

_time = time.time


class ActiveRun:
    """A run this process logs to. Use it as a context manager, or call ``end()``.

    Leaving the ``with`` block normally ends the run FINISHED; an exception ends it FAILED
    with the traceback stored; Ctrl-C ends it KILLED.

    Example:
        >>> import modelcycle as mc, tempfile
        >>> client = mc.Client(mc.Settings.for_home(tempfile.mkdtemp(), capture=False))
        >>> with client.start_run(experiment="demo", name="first") as run:
        ...     run.log_param("C", 0.5)
        ...     run.log_metric("auc", 0.91)
        >>> client.get_run(run.id).metrics["auc"]
        0.91
    """

    def __init__(self, client: Client, id: str, experiment: str, name: str | None,
                 parent_id: str | None = None, owned: bool = True):
        self._client = client
        self.id = id
        self.experiment = experiment
        self.name = name
        self.parent_id = parent_id
        self.status = RunStatus.RUNNING
        self._owned = owned
        self._implicit = False  # started by logging outside any run
        self._ended = False
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._metric_keys: set[str] = set()
        self._models: set[str] = set()
        buffer = client.buffer
        self._add_metric = buffer.add_metric
        self._params_q = buffer.params
        self._tags_q = buffer.tags

    @property
    def implicit(self) -> bool:
        """Started by logging outside any run: never the parent of a run started explicitly."""
        return self._implicit

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} name={self.name!r} experiment={self.experiment!r} {self.status.value}>"

    # --- life cycle -------------------------------------------------------------------
    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt | SystemExit) and not (
            issubclass(exc_type, SystemExit) and exc is not None and exc.code in (0, None)
        ):
            self.end(RunStatus.KILLED, error="".join(traceback.format_exception(exc_type, exc, tb)))
        elif issubclass(exc_type, SystemExit):
            self.end(RunStatus.FINISHED)
        else:
            self.end(RunStatus.FAILED, error="".join(traceback.format_exception(exc_type, exc, tb)))

    def end(self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None) -> None:
        """End the run and make everything logged to it durable."""
        self._client._end(self, RunStatus(status), error)

    @property
    def info(self) -> Run:
        """Everything stored about the run so far."""
        return self._client.get_run(self.id)

    def _check_open(self) -> None:
        if self._ended:
            raise ModelcycleError(f"run {self.id} has ended ({self.status.value}); start a new run to log more")

    # --- params, metrics, tags --------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter. Params are set once: logging a different value is an error."""
        self._check_open()
        check_key(key, "param")
        text = param_value(key, value)
        old = self._params.get(key)
        if old is not None:
            if old != text:
                raise ConflictError(
                    f"param {key!r} is already {old!r} in run {self.id}; params cannot change — "
                    "start a new run, or log the changing value as a metric or tag"
                )
            return
        self._params[key] = text
        self._params_q.append((self.id, key, text))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record several parameters; all are checked before any is recorded."""
        self._check_open()
        checked = {}
        for key, value in _mapping(params, "log_params").items():
            check_key(key, "param")
            text = param_value(key, value)
            old = self._params.get(key)
            if old is not None and old != text:
                raise ConflictError(f"param {key!r} is already {old!r} in run {self.id}; params cannot change")
            checked[key] = text
        for key, text in checked.items():
            if key not in self._params:
                self._params[key] = text
                self._params_q.append((self.id, key, text))

    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: float | None = None) -> None:
        """Record one point of a metric. Without ``step``, steps count 0, 1, 2, … per key.

        NaN and ±inf are stored as they are. The call only queues the point; it never waits on disk.
        """
        if self._ended:
            self._check_open()
        if key not in self._metric_keys:
            check_key(key, "metric")
            self._metric_keys.add(key)
        if type(value) is not float:
            value = metric_value(key, value)
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif type(step) is not int or not -_STEP_BOUND <= step < _STEP_BOUND:
            step = check_step(key, step)
        self._steps[key] = step
        if timestamp is None:
            timestamp = _time()
        elif type(timestamp) is not float or not -_TIME_BOUND < timestamp < _TIME_BOUND:  # NaN fails too
            timestamp = _timestamp(timestamp)
        self._add_metric((self.id, key, value, step, timestamp))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None) -> None:
        """Record several metrics at the same step; all are checked before any is recorded."""
        self._check_open()
        items = _mapping(metrics, "log_metrics")
        for key, value in items.items():
            check_key(key, "metric")
            metric_value(key, value)
        ts = _time() if timestamp is None else _timestamp(timestamp)
        for key, value in items.items():
            self.log_metric(key, value, step, ts)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag; unlike params, tags can be changed."""
        self._check_open()
        check_key(key, "tag")
        self._tags_q.append((self.id, key, tag_value(key, value)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open()
        checked = [(k, tag_value(check_key(k, "tag"), v)) for k, v in _mapping(tags, "set_tags").items()]
        for key, text in checked:
            self._tags_q.append((self.id, key, text))

    # --- artifacts --------------------------------------------------------------------
    def log_artifact(self, local_path: str | os.PathLike[str], name: str | None = None) -> str:
        """Store a file (or every file of a folder) with the run; returns its name in the run."""
        self._check_open()
        path = Path(local_path)
        if not path.exists():
            raise InvalidInputError(f"log_artifact: {str(path)!r} does not exist")
        target = safe_artifact_path(name if name is not None else path.name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            names = [f"{target}/{file.relative_to(path).as_posix()}" for file in files]
            with self._client._artifact_names(self, names):  # all are checked before any is stored
                for file, file_name in zip(files, names, strict=True):
                    self._client._put_file(self, file, file_name)
            return target
        with self._client._artifact_names(self, [target]):
            self._client._put_file(self, path, target)
        return target

    def log_bytes(self, data: bytes, name: str) -> str:
        """Store bytes as an artifact named ``name``."""
        self._check_open()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"log_bytes needs bytes, not {type(data).__name__}")
        target = safe_artifact_path(name)
        with self._client._artifact_names(self, [target]):
            return self._client._put_bytes(self, bytes(data), target)

    def log_text(self, text: str, name: str) -> str:
        """Store text as an artifact, e.g. ``log_text(report, "notes/summary.md")``."""
        if not isinstance(text, str):
            raise InvalidInputError(f"log_text needs a string, not {type(text).__name__}")
        return self.log_bytes(text.encode(), name)

    def log_dict(self, data: Any, name: str) -> str:
        """Store a dict as JSON (or YAML when the name ends in .yaml)."""
        from modelcycle.tracking.serialize import dict_bytes

        return self.log_bytes(dict_bytes(data, name), name)

    def log_figure(self, figure: Any, name: str) -> str:
        """Store a matplotlib or plotly figure, rendered as the name's extension says."""
        from modelcycle.tracking.serialize import figure_bytes

        safe_artifact_path(name)
        return self.log_bytes(figure_bytes(figure, name), name)

    def log_table(self, table: Any, name: str) -> str:
        """Store a DataFrame as Parquet (``.csv`` or ``.json`` if the name says so)."""
        from modelcycle.tracking.serialize import table_bytes

        safe_artifact_path(name)
        data, name = table_bytes(table, name)
        return self.log_bytes(data, name)

    def log_dataset(self, data: Any, name: str = "dataset", role: str = "input", profile: bool = True) -> str:
        """Record the fingerprint, size and schema of the data a run used; returns the fingerprint.

        With ``profile`` (the default) the data's profile is stored too, as the artifact
        ``datasets/<name>.<role>.profile``; ``Client.get_profile`` reads it back.
        """
        from modelcycle.tracking.serialize import dataset_input

        self._check_open()
        check_key(name, "dataset name")
        check_key(role, "dataset role")
        ds = dataset_input(data, name, role)
        if profile:
            from modelcycle.data.profile import profile as make_profile

            self.log_bytes(make_profile(data).to_bytes(), profile_artifact(name, role))
        self._client.buffer.inputs.append((self.id, ds))
        return ds.fingerprint


    def log_model(
        self,
        model: Any,
        name: str = "model",
        *,
        input_example: Any = None,
        signature: Any = None,
        reference_data: Any = None,
        allow_pickle: bool = False,
        trusted_types: list[str] | None = None,
        artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
        flavour: str | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> LoggedModel:
        """Store ``model`` as a package (see :func:`modelcycle.models.save_model`) under ``name`` in this run.

        ``trusted_types`` adds to the settings' ``MODELCYCLE_TRUSTED_TYPES``, so what this process may load it may also save.
        Returns a LoggedModel whose ``uri`` (``runs:/<run_id>/<name>``) loads or registers it.
        """
        import tempfile

        from modelcycle.models.package import MANIFEST, save_model

        self._check_open()
        prefix = safe_artifact_path(name)
        if prefix in self._models:
            raise ConflictError(f"this run already logged a model named {prefix!r}; give the new one another name")
        with tempfile.TemporaryDirectory(prefix="modelcycle-model-") as tmp:
            folder = Path(tmp) / "package"
            manifest = save_model(
                model, folder, flavour=flavour, signature=signature, input_example=input_example,
                reference_data=reference_data, allow_pickle=allow_pickle,
                trusted_types=[*self._client.settings.trusted_types, *(trusted_types or ())],
                artifacts=artifacts, init_kwargs=init_kwargs, metadata=metadata,
            )
            with self._client._artifact_names(self, [f"{prefix}/{file}" for file in (*sorted(manifest.files), MANIFEST)]):
                for file in sorted(manifest.files):
                    self._client._put_file(self, folder / file, f"{prefix}/{file}")
                self._client._put_file(self, folder / MANIFEST, f"{prefix}/{MANIFEST}")  # last: a package is complete once it is listed
        self._models.add(prefix)
        return LoggedModel(self.id, prefix, manifest.hash, manifest.flavour)


def profile_artifact(name: str, role: str) -> str:
    """Where a logged dataset's profile is stored within its run."""
    return f"datasets/{name}.{role}.profile"


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} needs a dict, not {type(value).__name__}")
    return value


_STEP_BOUND = 2**63  # a step is a 64-bit integer in both databases
_TIME_BOUND = 1e11  # seconds: the year 5138 (a larger value is most likely milliseconds)


def _timestamp(value: Any) -> float:
    """Seconds since the epoch, finite and within ±1e11 (a time in milliseconds is refused with a hint)."""
    try:
        seconds = float(value.timestamp()) if hasattr(value, "timestamp") else float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(f"timestamp must be seconds since the epoch or a datetime, not {value!r:.40}") from None
    if not -_TIME_BOUND < seconds < _TIME_BOUND:  # NaN and ±inf too
        hint = "; it looks like milliseconds: divide by 1,000" if _TIME_BOUND <= abs(seconds) < 1e14 else ""
        raise InvalidInputError(f"timestamp {value!r:.40} is not a time in seconds since the epoch{hint}")
    return seconds
