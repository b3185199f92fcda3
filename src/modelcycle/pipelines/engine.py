"""Running a traced pipeline: cache look-ups, execution on an executor, tracking of every step.

The pipeline is a run; each step is a child run with its parameters, its inputs' fingerprints
(tags ``input.<name>``), its output (artifacts under ``outputs/``), ``step.json`` (the cache key's
parts) and ``logs.txt``. A step is skipped when a previous successful execution had the same key:
the sha256 of its source, its inputs' fingerprints and its parameters (a parameter naming an
existing file counts that file's size and modification time too).
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle._hashing import hash_json
from modelcycle.entities import RunStatus
from modelcycle.errors import InvalidInputError, PipelineError
from modelcycle.pipelines.core import Graph, Node, OutputRef, Pipeline
from modelcycle.pipelines.materialize import Stored, load_output, save_output

if TYPE_CHECKING:
    from modelcycle.tracking.client import Client
    from modelcycle.tracking.run import ActiveRun

__all__ = ["PipelineError", "PipelineResult", "StepResult", "execute"]

KEY_FORMAT = 1
_MAX_PARAM = 500


@dataclass
class StepResult:
    """What happened to one step: ``status`` is finished, cached, failed or skipped."""

    name: str
    status: str = "pending"
    duration: float = 0.0
    cached: bool = False
    run_id: str | None = None
    cache_key: str | None = None
    reason: str = ""
    error: str | None = None
    output: Stored | None = None
    upstream: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "duration": self.duration, "cached": self.cached,
                "run_id": self.run_id, "cache_key": self.cache_key, "reason": self.reason, "error": self.error,
                "output": self.output.to_dict() if self.output else None, "upstream": self.upstream}


class _Outputs(Mapping[str, Any]):
    """Step outputs by name, read from the artifact store the first time each is asked for."""

    def __init__(self, result: PipelineResult):
        self._result = result

    def __getitem__(self, name: str) -> Any:
        r = self._result
        if name not in r.steps:
            raise KeyError(f"pipeline {r.pipeline!r} has no step {name!r}; its steps: {', '.join(r.steps)}")
        if name not in r._values:
            step = r.steps[name]
            if step.output is None:
                raise KeyError(f"step {name!r} has no output ({step.status})")
            r._values[name] = load_output(step.output, r._download, r._trusts.get(name))
        return r._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(n for n, s in self._result.steps.items() if s.output is not None)

    def __len__(self) -> int:
        return sum(1 for s in self._result.steps.values() if s.output is not None)


class PipelineResult:
    """The outcome of ``pipeline.run()``: the run, every step's status, and their outputs."""

    def __init__(self, pipeline: str, run_id: str, steps: dict[str, StepResult], download: Callable[[str, Path], None]):
        self.pipeline = pipeline
        self.run_id = run_id
        self.steps = steps
        self.status = "RUNNING"
        self.error: str | None = None
        self._values: dict[str, Any] = {}
        self._download = download
        self._trusts: dict[str, Any] = {}  # per step: what its stored model outputs may build (the step's declaration)
        self._graph_output: Any = None
        self.outputs: Mapping[str, Any] = _Outputs(self)

    @property
    def output(self) -> Any:
        """What the pipeline function returned, with step outputs filled in."""
        return _resolve(self._graph_output, lambda ref: _index(self.outputs[ref.node], ref.path))

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self.steps.values():
            counts[s.status] = counts.get(s.status, 0) + 1
        return f"<PipelineResult {self.pipeline} {self.status} run={self.run_id[:8]} {counts}>"

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "run_id": self.run_id, "status": self.status, "error": self.error,
                "steps": {n: s.to_dict() for n, s in self.steps.items()}}


def _index(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _resolve(value: Any, fetch: Callable[[OutputRef], Any]) -> Any:
    if isinstance(value, OutputRef):
        return fetch(value)
    if isinstance(value, list):
        return [_resolve(v, fetch) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v, fetch) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, fetch) for k, v in value.items()}
    return value


# --- cache keys -----------------------------------------------------------------------------------
def folder_fingerprint(folder: str, limit: int = 20_000) -> tuple[str, int]:
    """A hash of the names, sizes and modification times of the files under ``folder`` (hidden ones left out),
    and how many files it covers (at most ``limit``): what changes when data arrive or are rewritten."""
    from modelcycle.store.locations import fingerprint

    digest, count, _ = fingerprint(folder, limit)
    return digest, count


def _literal(step: str, name: str, value: Any) -> Any:
    """A parameter as it enters the cache key: JSON-able values as they are, data by fingerprint."""
    from modelcycle.pipelines.materialize import _is_jsonable
    from modelcycle.store.locations import fingerprint, is_object_url

    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if is_object_url(value):  # rewritten or new objects (by their ETag, size and time) re-run the step
        digest, _, kind = fingerprint(value)
        return {"object": value, "kind": kind, "fingerprint": digest}
    if isinstance(value, str) and len(value) < 4096 and os.path.isfile(value):
        st = os.stat(value)
        return {"file": value, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if isinstance(value, str) and len(value) < 4096 and value.strip() and os.path.isdir(value):
        return {"folder": value, "files": folder_fingerprint(value)[0]}  # a new or changed file in a data folder re-runs the step
    if _is_jsonable(value):
        return value
    if isinstance(value, (list, tuple)):
        return [_literal(step, name, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _literal(step, name, v) for k, v in value.items()}
    kind = type(value).__name__
    if kind in ("DataFrame", "ndarray", "Series", "Table"):
        from modelcycle.tracking.serialize import dataset_input

        return {"data": dataset_input(value, name, "param").fingerprint}
    raise InvalidInputError(
        f"parameter {name!r} of step {step!r} is a {type(value).__module__}.{type(value).__qualname__}; a step's parameters "
        "must be JSON-able values, files, DataFrames or arrays (or the output of another step)"
    )


def _ref_fingerprint(stored: Stored, path: tuple[Any, ...]) -> str:
    for key in path:
        items = stored.items
        in_list = isinstance(items, list) and isinstance(key, int) and -len(items) <= key < len(items)
        if in_list or (isinstance(items, dict) and key in items):
            stored = items[key]  # type: ignore[index]
        else:
            return hash_json({"of": stored.fingerprint, "path": list(path)})
    return stored.fingerprint


def _components(node: Node, outputs: dict[str, Stored]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for arg, value in node.arguments.items():
        if isinstance(value, OutputRef):
            inputs[arg] = _ref_fingerprint(outputs[value.node], value.path)
        elif _has_ref(value):
            inputs[arg] = _resolve(value, lambda ref: {"ref": _ref_fingerprint(outputs[ref.node], ref.path)})
        else:
            params[arg] = _literal(node.step.name, arg, value)
    return {"format": KEY_FORMAT, "step": node.step.name, "source": node.step.source_hash, "inputs": inputs, "params": params}


def _has_ref(value: Any) -> bool:
    if isinstance(value, OutputRef):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_has_ref(v) for v in value.values())
    return False


def _why(previous: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """Why a step is not cached: what differs from the step's latest cached execution."""
    if previous is None:
        return "first execution of this step"
    before = previous.get("output", {}).get("meta", {}).get("components") or {}
    reasons = []
    if before.get("source") != now["source"]:
        reasons.append("its source code changed")
    for arg in sorted(set(before.get("inputs", {})) | set(now["inputs"])):
        if before.get("inputs", {}).get(arg) != now["inputs"].get(arg):
            reasons.append(f"input {arg!r} changed")
    for arg in sorted(set(before.get("params", {})) | set(now["params"])):
        old, new = before.get("params", {}).get(arg), now["params"].get(arg)
        if old != new:
            reasons.append(_param_change(arg, old, new))
    return "; ".join(reasons) or "no earlier execution has exactly this key"


def _param_change(arg: str, old: Any, new: Any) -> str:
    """Why a parameter counts as changed; for data named by a path or URL, what changed in it."""
    for key in ("object", "file", "folder"):
        if isinstance(old, dict) and isinstance(new, dict) and old.get(key) is not None and old.get(key) == new.get(key):
            where = _short(new[key])
            if key == "object":
                return f"parameter {arg!r}: the {new.get('kind') or 'object'} at {where} changed in the store (ETag, size or time)"
            if key == "file":
                return f"parameter {arg!r}: the file {where} changed (size {old.get('size')} → {new.get('size')}, or its time)"
            return f"parameter {arg!r}: files in the folder {where} were added, removed or changed"
    return f"parameter {arg!r} changed ({_short(old)} → {_short(new)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


# --- logs captured per thread -----------------------------------------------------------------------
class _Tee(io.TextIOBase):
    """Stands in for sys.stdout/stderr while steps run: writes go through, and into the running step's log."""

    def __init__(self, original: Any, local: threading.local):
        self.original = original
        self.local = local

    def write(self, text: str) -> int:
        buf = getattr(self.local, "buffer", None)
        if buf is not None:
            buf.write(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.original, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


_capture = threading.local()
_tee_lock = threading.Lock()
_tee_users = 0


def _install_tee() -> None:
    global _tee_users
    with _tee_lock:
        if _tee_users == 0:
            sys.stdout = _Tee(sys.stdout, _capture)
            sys.stderr = _Tee(sys.stderr, _capture)
        _tee_users += 1


def _remove_tee() -> None:
    global _tee_users
    with _tee_lock:
        _tee_users -= 1
        if _tee_users == 0:
            if isinstance(sys.stdout, _Tee):
                sys.stdout = sys.stdout.original
            if isinstance(sys.stderr, _Tee):
                sys.stderr = sys.stderr.original


# --- running one step (in a thread here, or in a Dask worker) ------------------------------------------
@dataclass
class Outcome:
    ok: bool
    stored: Stored | None = None
    duration: float = 0.0
    error: str | None = None
    value: Any = None
    has_value: bool = False


def _put(client: Client, run: ActiveRun, source: Path | bytes, name: str, sizes: dict[str, int]) -> str:
    # Without fsync: a step's output can be made again, and is verified whenever it is read.
    store = client.artifact_store
    digest, size = store.put_bytes(source, durable=False) if isinstance(source, bytes) else store.put_file(source, durable=False)
    client.buffer.artifacts.append((run.id, name, digest, size, time.time()))
    sizes[digest] = size
    return digest


def run_step(client: Client, run: ActiveRun, node: Node, kwargs: dict[str, Any], components: dict[str, Any],
             keep_value: bool) -> Outcome:
    """Execute one step inside its (already started) child run; end the run; never raise."""
    start = time.perf_counter()
    _capture.buffer = buffer = io.StringIO()
    try:
        with client.activated(run):
            attempt = 0
            while True:
                try:
                    value = node.step.fn(**kwargs)
                    break
                except Exception:
                    attempt += 1
                    if attempt > node.step.retries:
                        raise
                    print(f"[modelcycle] step {node.name!r} failed (attempt {attempt} of {node.step.retries + 1}), retrying:\n"
                          + traceback.format_exc(), file=sys.stderr)
            sizes: dict[str, int] = {}
            put = lambda source, name: _put(client, run, source, name, sizes)  # noqa: E731
            stored = save_output(value, put, node.name, put_bytes=put, trust=node.step.trust(client.settings))
            stored.meta = {"components": components, "sizes": sizes}
        duration = time.perf_counter() - start
        record = json.dumps({"components": components, "output": stored.to_dict(), "duration": duration}, indent=1, default=str)
        _put(client, run, record.encode(), "step.json", {})
        _end_with_logs(run, buffer, RunStatus.FINISHED)
        return Outcome(True, stored, duration, value=value if keep_value else None, has_value=keep_value)
    except BaseException as e:  # a step's failure is recorded, not raised: the pipeline decides what happens next
        duration = time.perf_counter() - start
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        _end_with_logs(run, buffer, RunStatus.FAILED, traceback.format_exc())
        if not isinstance(e, Exception):
            raise
        return Outcome(False, None, duration, message)
    finally:
        _capture.buffer = None


def _end_with_logs(run: ActiveRun, buffer: io.StringIO, status: RunStatus, error: str | None = None) -> None:
    text = buffer.getvalue()
    if text:
        run.log_text(text, "logs.txt")
    run.end(status, error=error)


# --- the pipeline loop ---------------------------------------------------------------------------------
def _string(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 1] + "…"


def execute(pipeline: Pipeline, params: Mapping[str, Any], *, executor: str | None, cache: bool, from_step: str | None,
            experiment: str | None, client: Client | None, progress: Callable[[str, str], None] | None) -> PipelineResult:
    from modelcycle.pipelines.executors import make_executor
    from modelcycle.tracking.fluent import get_client

    client = client or get_client()
    bound = pipeline.bind(params)
    graph = pipeline.trace(bound)
    if from_step is not None and from_step not in graph.nodes:
        raise InvalidInputError(f"pipeline {pipeline.name!r} has no step {from_step!r}; its steps: {', '.join(graph.nodes)}")
    forced = graph.downstream(from_step) if from_step else set()
    runner = make_executor(executor, client)
    exp = experiment or pipeline.name
    parent = client.start_run(experiment=exp, name=pipeline.name, params={k: _string(v) for k, v in bound.items()},
                              tags={"modelcycle.kind": "pipeline", "modelcycle.pipeline": pipeline.name,
                                    "modelcycle.executor": runner.name})

    def download(digest: str, path: Path) -> None:
        client.artifact_store.download(digest, path)

    steps = {name: StepResult(name, upstream=list(node.upstream)) for name, node in graph.nodes.items()}
    result = PipelineResult(pipeline.name, parent.id, steps, download)
    result._graph_output = graph.output
    result._trusts = {name: node.step.trust(client.settings) for name, node in graph.nodes.items()}
    outputs: dict[str, Stored] = {}
    _install_tee()
    try:
        with client.activated(parent):
            _loop(graph, client, runner, parent, result, outputs, cache, forced, exp, progress)
    except BaseException as e:
        parent.end(RunStatus.KILLED if isinstance(e, KeyboardInterrupt) else RunStatus.FAILED, error=traceback.format_exc())
        raise
    finally:
        _remove_tee()
        runner.close()
    failed = [s for s in steps.values() if s.status == "failed"]
    parent.log_dict({"pipeline": pipeline.name, "params": {k: _string(v) for k, v in bound.items()}, "executor": runner.name,
                     "steps": {n: s.to_dict() for n, s in steps.items()}}, "pipeline.json")
    if failed:
        first = failed[0]
        result.status = "FAILED"
        skipped = [s.name for s in steps.values() if s.status == "skipped"]
        result.error = (f"step {first.name!r} failed: {first.error}" + (f"; skipped what depends on it: {', '.join(skipped)}" if skipped else ""))
        parent.end(RunStatus.FAILED, error=result.error)
        client.flush()
        raise PipelineError(f"pipeline {pipeline.name!r} (run {parent.id[:8]}) failed: {result.error}; "
                            "what finished is cached, so running it again resumes after the last finished step", result)
    result.status = "FINISHED"
    parent.end(RunStatus.FINISHED)
    client.flush()
    return result


def _loop(graph: Graph, client: Client, runner: Any, parent: ActiveRun, result: PipelineResult, outputs: dict[str, Stored],
          cache: bool, forced: set[str], experiment: str, progress: Callable[[str, str], None] | None) -> None:
    steps = result.steps
    pending = dict(graph.nodes)
    running: dict[Any, tuple[str, float | None, ActiveRun]] = {}
    values: dict[str, Any] = {}  # outputs produced in this process (no need to read them back)

    def notify(name: str, status: str) -> None:
        if progress is not None:
            progress(name, status)

    def value_of(ref: OutputRef) -> Any:
        if ref.node not in values:
            values[ref.node] = load_output(outputs[ref.node], lambda d, p: client.artifact_store.download(d, p), result._trusts[ref.node])
        return _index(values[ref.node], ref.path)

    def settle(name: str) -> None:
        """Skip every pending step that depends on a failed or skipped one."""
        for other in list(pending):
            node = pending[other]
            if any(steps[u].status in ("failed", "skipped") for u in node.upstream):
                steps[other].status = "skipped"
                steps[other].reason = f"depends on {', '.join(u for u in node.upstream if steps[u].status in ('failed', 'skipped'))}"
                del pending[other]
                notify(other, "skipped")

    while pending or running:
        started = False
        for name in list(pending):
            node = pending[name]
            if any(steps[u].status not in ("finished", "cached") for u in node.upstream):
                continue
            del pending[name]
            components = _components(node, outputs)
            key = hash_json(components)
            record = steps[name]
            record.cache_key = key
            if not cache or not node.step.cache or name in forced:
                record.reason = ("caching is off for this run" if not cache else "the step has cache=False" if not node.step.cache
                                 else "forced by from_step")
            else:
                hit, previous = client.store.cache_lookup(key, graph.pipeline, name)
                if hit is not None and all(client.artifact_store.exists(d) for d in _digests(Stored.from_dict(hit["output"]))):
                    stored = Stored.from_dict(hit["output"])
                    run = client.start_run(experiment=experiment, name=name, parent=parent, activate=False,
                                           params={k: _string(v) for k, v in components["params"].items()},
                                           tags={"modelcycle.kind": "step", "modelcycle.step": node.step.name, "modelcycle.cached": "true",
                                                 "modelcycle.cached_from": hit["run_id"], "modelcycle.cache_key": key,
                                                 **{f"input.{k}": _string(v) for k, v in components["inputs"].items()}})
                    sizes = stored.meta.get("sizes", {})
                    for rel, digest in _files(stored):
                        client.buffer.artifacts.append((run.id, rel, digest, int(sizes.get(digest, 0)), time.time()))
                    run.end(RunStatus.FINISHED)
                    outputs[name] = stored
                    record.status, record.cached, record.run_id, record.output = "cached", True, run.id, stored
                    record.reason = f"same source, inputs and parameters as run {hit['run_id'][:8]}"
                    notify(name, "cached")
                    started = True
                    continue
                record.reason = _why(previous, components) if hit is None else "the cached output is no longer in the artifact store"
            kwargs = {arg: _resolve(v, value_of) for arg, v in node.arguments.items()} if runner.local else None
            run = client.start_run(experiment=experiment, name=name, parent=parent, activate=False,
                                   params={k: _string(v) for k, v in components["params"].items()},
                                   tags={"modelcycle.kind": "step", "modelcycle.step": node.step.name, "modelcycle.cached": "false",
                                         "modelcycle.cache_key": key, **{f"input.{k}": _string(v) for k, v in components["inputs"].items()}})
            record.run_id = run.id
            notify(name, "running")
            future = runner.submit(node, run, kwargs, components, outputs, {u: result._trusts[u] for u in node.upstream})
            deadline = time.monotonic() + node.step.timeout if node.step.timeout else None
            running[future] = (name, deadline, run)
            started = True
        if not running:
            if pending and not started:  # nothing can start and nothing runs: only skipped work is left
                for name in list(pending):
                    steps[name].status = "skipped"
                    del pending[name]
            continue
        done = runner.wait(list(running), timeout=_next_deadline(running))
        now = time.monotonic()
        for future in list(running):
            name, deadline, run = running[future]
            record = steps[name]
            if future in done:
                del running[future]
                outcome = runner.outcome(future)
                record.duration = outcome.duration
                if outcome.ok:
                    assert outcome.stored is not None
                    outputs[name] = outcome.stored
                    record.output = outcome.stored
                    record.status = "finished"
                    if outcome.has_value:
                        values[name] = outcome.value
                    node = graph.nodes[name]
                    if node.step.cache:
                        client.store.cache_put(record.cache_key or "", graph.pipeline, name, run.id, outcome.stored.to_dict(),
                                               outcome.stored.fingerprint, time.time())
                else:
                    record.status, record.error = "failed", outcome.error
                client.flush()  # what finished is on disk before the next step starts
                notify(name, record.status)
                settle(name)
            elif deadline is not None and now >= deadline:
                del running[future]
                runner.abandon(future)
                timeout = graph.nodes[name].step.timeout
                record.status = "failed"
                record.error = (f"TimeoutError: step {name!r} ran longer than its timeout of {timeout:g} s; "
                                "raise @mc.step(timeout=...) or make the step faster")
                record.duration = float(timeout or 0)
                run.end(RunStatus.FAILED, error=record.error)
                client.flush()
                notify(name, "failed")
                settle(name)


def _next_deadline(running: dict[Any, tuple[str, float | None, Any]]) -> float | None:
    deadlines = [d for _, d, _ in running.values() if d is not None]
    return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None


def _files(stored: Stored, prefix: str = "outputs") -> Iterator[tuple[str, str]]:
    if stored.items is not None:
        items = stored.items.items() if isinstance(stored.items, dict) else enumerate(stored.items)
        for key, item in items:
            yield from _files(item, f"{prefix}/{key}")
        return
    for rel, digest in stored.files.items():
        yield f"{prefix}/{rel}", digest


def _digests(stored: Stored) -> list[str]:
    return [d for _, d in _files(stored)]
