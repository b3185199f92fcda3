"""``@mc.step`` and ``@mc.pipeline``: plain functions whose calls, inside a pipeline, build the DAG.

Outside a pipeline a step is an ordinary function call. Inside one, calling a step records a node
and returns a reference to its future output; passing that reference to another step is what
makes a dependency, so the DAG is exactly the data flow.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import re
import textwrap
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelcycle.errors import InvalidInputError
from modelcycle.models.trust import Trust

__all__ = ["Graph", "Node", "OutputRef", "Pipeline", "Step", "parse_duration", "pipeline", "step"]

_TRACE: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("modelcycle_pipeline_trace", default=None)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds from ``"90s"``, ``"10m"``, ``"2h"``, ``"500ms"`` or a number of seconds.

    Example:
        >>> parse_duration("10m"), parse_duration(1.5), parse_duration(None)
        (600.0, 1.5, None)
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise InvalidInputError(f"a timeout must be positive, not {value}")
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
    if not match:
        raise InvalidInputError(f"{value!r} is not a duration; write it like '90s', '10m' or '2h'")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _source_hash(fn: Callable[..., Any]) -> str:
    """sha256 of the function's source without its decorators (so changing retries= keeps the cache)."""
    try:
        lines = textwrap.dedent(inspect.getsource(fn)).splitlines()
        while lines and not lines[0].lstrip().startswith(("def ", "async def ")):
            lines.pop(0)
        text = "\n".join(lines)
    except (OSError, TypeError):  # defined where no source is kept (a REPL): the bytecode stands in
        code = fn.__code__
        text = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class OutputRef:
    """The future output of a node (or an item of it: ``ref[0]``, ``ref["train"]``)."""

    node: str
    graph_id: int
    path: tuple[Any, ...] = ()

    def __getitem__(self, key: Any) -> OutputRef:
        return OutputRef(self.node, self.graph_id, (*self.path, key))

    def __iter__(self) -> Any:
        raise InvalidInputError(
            f"the output of step {self.node!r} is not known until the pipeline runs, so it cannot be unpacked here; "
            f"declare its parts, @mc.step(outputs=('train', 'test')), or index it: out[0]"
        )

    def __bool__(self) -> bool:
        raise InvalidInputError(
            f"the output of step {self.node!r} is not known until the pipeline runs, so a pipeline cannot branch on it; "
            "decide inside a step instead"
        )


@dataclass
class Node:
    name: str
    step: Step
    arguments: dict[str, Any]  # parameter name -> literal, OutputRef, or containers of them
    upstream: list[str] = field(default_factory=list)


def _refs(value: Any) -> list[OutputRef]:
    if isinstance(value, OutputRef):
        return [value]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


class Graph:
    """The nodes a pipeline function created, in call order (which is a topological order)."""

    def __init__(self, pipeline: str):
        self.pipeline = pipeline
        self.nodes: dict[str, Node] = {}
        self.output: Any = None

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise InvalidInputError(f"step {step.name!r} in pipeline {self.pipeline!r}: {e}") from None
        bound.apply_defaults()
        name = step.name
        n = 2
        while name in self.nodes:
            name = f"{step.name}_{n}"
            n += 1
        upstream: list[str] = []
        for ref in _refs(bound.arguments):
            if ref.graph_id != id(self) or ref.node not in self.nodes:
                raise InvalidInputError(
                    f"step {name!r} depends on the output of {ref.node!r}, which is not a step of pipeline {self.pipeline!r}; "
                    "call that step inside this pipeline first"
                )
            if ref.node not in upstream:
                upstream.append(ref.node)
        self.nodes[name] = Node(name, step, dict(bound.arguments), upstream)
        out = OutputRef(name, id(self))
        if step.outputs:
            return tuple(out[key] if isinstance(key, int) else out[i] for i, key in enumerate(step.outputs))
        return out

    def downstream(self, name: str) -> set[str]:
        """``name`` and every node that depends on it, directly or not."""
        found = {name}
        for node in self.nodes.values():  # call order is topological
            if any(u in found for u in node.upstream):
                found.add(node.name)
        return found


class Step:
    """A function that pipelines run as a tracked, cached unit. Called outside a pipeline, it just runs.

    Example:
        >>> @step
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> double(21)
        42
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, retries: int = 0,
                 timeout: str | float | None = None, cache: bool = True, outputs: tuple[str, ...] | int | None = None,
                 allow_pickle: bool = False, trusted_types: Sequence[str] = ()):
        if not callable(fn):
            raise InvalidInputError(f"@mc.step decorates a function, not {type(fn).__name__}")
        self.fn = fn
        self.name = name or fn.__name__
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,120}", self.name):
            raise InvalidInputError(f"{self.name!r} is not a valid step name: letters, digits, '_', '.' and '-'")
        if not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be a whole number ≥ 0, not {retries!r}")
        self.retries = retries
        self.timeout = parse_duration(timeout)
        self.cache = bool(cache)
        self.outputs = tuple(range(outputs)) if isinstance(outputs, int) else tuple(outputs or ())
        self.allow_pickle = bool(allow_pickle)
        self.trusted_types = tuple(sorted(Trust.of(False, trusted_types).types))
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def source_hash(self) -> str:
        return _source_hash(self.fn)

    def trust(self, settings: Any = None) -> Trust:
        """What this step's stored outputs may build when read back: what the step declares, plus the settings' trusted types."""
        return Trust.of(self.allow_pickle, [*self.trusted_types, *(getattr(settings, "trusted_types", ()) or ())])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = _TRACE.get()
        if graph is None:
            return self.fn(*args, **kwargs)
        return graph.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<modelcycle step {self.name}>"


def step(fn: Callable[..., Any] | None = None, *, name: str | None = None, retries: int = 0, timeout: str | float | None = None,
         cache: bool = True, outputs: tuple[str, ...] | int | None = None, allow_pickle: bool = False,
         trusted_types: Sequence[str] = ()) -> Any:
    """Make a function a pipeline step: ``@mc.step`` or ``@mc.step(retries=2, timeout="10m", cache=False)``.

    Args:
        retries: extra attempts after an exception.
        timeout: a step running longer fails with a message naming it (``"90s"``, ``"10m"``, seconds).
        cache: False re-runs the step every time.
        outputs: names (or the number) of the parts of a tuple it returns, so ``a, b = split(df)`` works in a pipeline.
        allow_pickle: the step returns a PythonModel, stored with pickle; its stored output is then read back with
            ``trust=True`` (for this step only: a cache row never grants it).
        trusted_types: types (``module.Class``) of the models it returns that the model loader does not allow by itself.
    """
    if fn is not None:
        return Step(fn)
    return lambda f: Step(f, name, retries, timeout, cache, outputs, allow_pickle, trusted_types)


_SIMPLE = {int, float, str, bool}


def _check_type(pipeline: str, name: str, value: Any, annotation: Any) -> Any:
    """Check (and for numbers, widen) a pipeline parameter against its annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) else (annotation,)
    if value is None and type(None) in options:
        return value
    for option in options:
        if option is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if option in _SIMPLE and type(value) is option:
            return value
        if option not in _SIMPLE and isinstance(option, type) and isinstance(value, option):
            return value
        if not isinstance(option, type) and option not in _SIMPLE:
            return value  # generics (list[str], …) are not checked
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise InvalidInputError(f"parameter {name!r} of pipeline {pipeline!r} expects {expected}, got {type(value).__name__} {value!r}")


def convert_cli_value(pipeline: str, name: str, text: str, annotation: Any) -> Any:
    """A ``-p name=text`` value converted to the parameter's annotated type."""
    if annotation in (inspect.Parameter.empty, str, Any):
        return text
    try:
        if annotation is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if annotation in (int, float):
            return annotation(text)
    except ValueError:
        raise InvalidInputError(
            f"parameter {name!r} of pipeline {pipeline!r} expects {annotation.__name__}, got {text!r}") from None
    from modelcycle import _yaml

    where = f"parameter {name!r} of pipeline {pipeline!r}"
    try:
        return _yaml.load(text, source=where)
    except _yaml.YAMLError as e:
        raise InvalidInputError(f"{where}: {text!r} is not valid YAML ({getattr(e, 'problem', e)}); quote it or fix the brackets") from None


class Pipeline:
    """A function of steps. ``.run(**params)`` traces it, then runs its steps with caching and tracking.

    Example:
        >>> @step
        ... def make(n: int) -> list:
        ...     return list(range(n))
        >>> @step
        ... def total(xs: list) -> int:
        ...     return sum(xs)
        >>> @pipeline
        ... def numbers(n: int = 4):
        ...     return total(make(n))
        >>> numbers.trace({"n": 3}).nodes.keys()
        dict_keys(['make', 'total'])
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None):
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        self.hints = typing.get_type_hints(fn) if fn.__annotations__ else {}
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<modelcycle pipeline {self.name}>"

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters with defaults filled in, checked by name and annotated type."""
        known = self.signature.parameters
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidInputError(
                f"pipeline {self.name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters: {', '.join(known) or 'none'}")
        out: dict[str, Any] = {}
        for name, p in known.items():
            if name in params:
                out[name] = _check_type(self.name, name, params[name], self.hints.get(name, p.annotation))
            elif p.default is not inspect.Parameter.empty:
                out[name] = p.default
            else:
                raise InvalidInputError(f"pipeline {self.name!r} needs a value for parameter {name!r}")
        return out

    def trace(self, params: Mapping[str, Any]) -> Graph:
        graph = Graph(self.name)
        token = _TRACE.set(graph)
        try:
            graph.output = self.fn(**self.bind(params))
        finally:
            _TRACE.reset(token)
        if not graph.nodes:
            raise InvalidInputError(f"pipeline {self.name!r} calls no @mc.step function, so there is nothing to run")
        return graph

    def run(self, *, executor: str | None = None, cache: bool = True, from_step: str | None = None,
            experiment: str | None = None, client: Any = None, progress: Any = None, **params: Any) -> Any:
        """Run the pipeline as a tracked run; every step becomes a child run.

        Args:
            executor: None or "local" (threads on this machine), "dask" (a LocalCluster), "dask://host:port".
            cache: False runs every step even when a previous result matches.
            from_step: force this step, and everything that depends on it, to run again.
            experiment: where the run goes (default: the pipeline's name).
            progress: called as ``progress(step_name, status)`` when a step starts or ends.

        Returns:
            A PipelineResult: ``run_id``, ``status``, ``outputs[step]``, ``steps[step]`` (status, duration, cached).

        Raises:
            PipelineError: a step failed (the result is attached as ``.result``).
        """
        from modelcycle.pipelines.engine import execute

        return execute(self, params, executor=executor, cache=cache, from_step=from_step, experiment=experiment,
                       client=client, progress=progress)


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Make a function of steps a pipeline: ``@mc.pipeline`` or ``@mc.pipeline(name="training")``."""
    if fn is not None:
        return Pipeline(fn)
    return lambda f: Pipeline(f, name)
