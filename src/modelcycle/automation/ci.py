"""``modelcycle ci``: check a project's data, pipeline and gate on a sample, report as JUnit XML and Markdown, promote on main.

The checks, each a test case of the JUnit report:

1. **data validation** — the first rows (2,000 by default) of the files in ``data.source`` against ``data.schema``;
2. **pipeline smoke run** — the pipeline run on that sample (copied to a temporary folder and passed as ``data``);
3. **gate: <rule>** — one per rule of ``model.policy``, on the model and test rows the smoke run returned,
   against the registered champion when there is one.

Nothing is registered unless ``promote=True`` (the main branch): then the model trained on all the data
is logged, registered, gated with ``validate_model`` and promoted when its verdict passes.
"""

from __future__ import annotations

import math
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle.automation.spec import ProjectSpec, load_spec
from modelcycle.errors import InvalidInputError, ModelcycleError, NotFoundError

__all__ = ["DEFAULT_SAMPLE_ROWS", "CheckResult", "CiReport", "run_ci"]

DEFAULT_SAMPLE_ROWS = 2000
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MARK = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭️ skipped"}


@dataclass
class CheckResult:
    """One check of ``modelcycle ci``: its name, ``passed``/``failed``/``skipped``, a one-line message and the evidence.

    Example:
        >>> check = CheckResult("data validation", "failed", "age: range (expected >= 0, observed 2 row(s))")
        >>> check.passed, check.failed
        (False, True)
    """

    name: str
    status: str  # passed | failed | skipped
    message: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    output: str = ""  # the long form (every anomaly, a traceback's last lines): JUnit's failure text

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message, "seconds": round(self.seconds, 3),
                "details": self.details}


@dataclass
class CiReport:
    """What ``run_ci`` found: every check, the sample it used, and what was promoted.

    ``passed`` is true when no check failed (skipped checks, e.g. no schema, do not fail).

    Example:
        >>> report = CiReport("churn", checks=[CheckResult("data validation", "passed", "2,000 rows match")])
        >>> report.passed, "| data validation |" in report.to_markdown()
        (True, True)
    """

    project: str
    checks: list[CheckResult] = field(default_factory=list)
    spec: str = ""
    sample_rows: int = 0
    sample_files: int = 0
    sample_complete: bool = False
    run_id: str | None = None
    promoted: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.failed]

    def check(self, name: str) -> CheckResult:
        """The check called ``name``.

        Raises:
            NotFoundError: no check has that name; the message lists them.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise NotFoundError(f"no check named {name!r}; the checks: {', '.join(c.name for c in self.checks)}")

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "passed": self.passed, "spec": self.spec, "seconds": round(self.seconds, 3),
                "sample": {"rows": self.sample_rows, "files": self.sample_files, "complete": self.sample_complete},
                "run_id": self.run_id, "promoted": self.promoted, "checks": [c.to_dict() for c in self.checks]}

    def to_junit(self) -> str:
        """A JUnit XML report: one test case per check, with ``<failure>`` or ``<skipped>`` and their messages."""
        import xml.etree.ElementTree as ET

        failures = sum(c.failed for c in self.checks)
        skipped = sum(c.status == "skipped" for c in self.checks)
        counts = {"tests": str(len(self.checks)), "failures": str(failures), "errors": "0", "skipped": str(skipped),
                  "time": f"{self.seconds:.3f}"}
        suites = ET.Element("testsuites", {"name": "modelcycle ci", **counts})
        project = _xml(self.project)
        stamp = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        suite = ET.SubElement(suites, "testsuite", {"name": f"modelcycle ci: {project}", **counts, "timestamp": stamp,
                                                     "hostname": socket.gethostname()})
        props = ET.SubElement(suite, "properties")
        for key, value in (("spec", self.spec), ("sample_rows", self.sample_rows), ("run_id", self.run_id or "")):
            ET.SubElement(props, "property", {"name": key, "value": _xml(value)})
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", {"classname": f"modelcycle.{project}", "name": _xml(c.name),
                                                     "time": f"{c.seconds:.3f}"})
            if c.failed:
                node = ET.SubElement(case, "failure", {"message": _xml(c.message), "type": _xml(c.details.get("error_type", "CheckFailed"))})
                node.text = _xml(c.output or c.message)
            elif c.status == "skipped":
                ET.SubElement(case, "skipped", {"message": _xml(c.message)})
            elif c.message:
                ET.SubElement(case, "system-out").text = _xml(c.message)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

    def to_markdown(self) -> str:
        """A Markdown summary (for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment): the verdict and a table of checks."""
        head = "✅ passed" if self.passed else f"❌ failed ({len(self.failures)} of {len(self.checks)} checks)"
        lines = [f"## modelcycle ci: {self.project} — {head}", "", "| check | result | details | time |", "| --- | --- | --- | --- |"]
        for c in self.checks:
            lines.append(f"| {_cell(c.name)} | {_MARK.get(c.status, c.status)} | {_cell(c.message)} | {c.seconds:.1f} s |")
        lines.append("")
        sample = (f"all {self.sample_rows:,} rows" if self.sample_complete else f"the first {self.sample_rows:,} rows")
        notes = [f"sample: {sample} of {self.sample_files} file(s)" if self.sample_files else "sample: none"]
        if self.run_id:
            notes.append(f"smoke run `{self.run_id[:8]}`")
        if self.promoted:
            notes.append(f"promoted `{self.promoted['model']}@{self.promoted['alias']}` → version {self.promoted['version']}")
        lines.append(" · ".join(notes) + f" · {self.seconds:.1f} s")
        return "\n".join(lines) + "\n"


def _xml(text: Any) -> str:
    """``text`` without the characters XML 1.0 cannot hold (terminal colour codes from a traceback, say)."""
    return _NOT_XML.sub("", str(text))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


@dataclass
class _Sample:
    folder: Path  # the temporary copy
    data: str  # what the pipeline gets as ``data``
    frame: Any  # every sampled row, for validation
    files: int
    complete: bool  # the sample holds all the data


class _Checks:
    """Collects check results, timing each one, and reports them as they finish."""

    def __init__(self, report: CiReport, say: Callable[[str], None]):
        self.report = report
        self.say = say

    @contextmanager
    def run(self, name: str) -> Iterator[CheckResult]:
        result = CheckResult(name, "passed")
        start = time.perf_counter()
        try:
            yield result
        except Exception as e:  # the project's own code failed: a failed check, reported, never a crash of ci
            _fail(result, e)
        result.seconds = time.perf_counter() - start
        self.add(result)

    def add(self, result: CheckResult) -> None:
        self.report.checks.append(result)
        self.say(f"{result.name}: {result.status}" + (f" — {result.message}" if result.message else ""))


def _fail(result: CheckResult, e: BaseException) -> CheckResult:
    result.status = "failed"
    result.message = _one_line(e)
    result.details.setdefault("error_type", type(e).__name__)
    result.output = result.output or _long_form(e)
    return result


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, ModelcycleError) else f"{type(e).__name__}: {text}" if text else type(e).__name__


def _long_form(e: BaseException) -> str:
    """The message of an error modelcycle raised on purpose; the end of the traceback of anything else (the project's code)."""
    if isinstance(e, ModelcycleError):
        return str(e)
    import traceback

    return "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])


def run_ci(spec: ProjectSpec | str | Path | None = None, client: Any = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
           junit: str | Path | None = None, summary: str | Path | None = None, promote: bool = False,
           say: Callable[[str], None] | None = None) -> CiReport:
    """Check a project as CI does: its data sample, a smoke run of its pipeline, and its gate; optionally promote.

    Args:
        spec: the loaded ``modelcycle.yaml``, or its path (default: ``./modelcycle.yaml``).
        client: where runs and models are kept (the default client, from the environment, when None). A client
            given here becomes the default one, since the pipeline's steps log through ``mc.*``, as the agent does.
        sample_rows: how many rows, from the start of the data files, the checks use.
        junit: write a JUnit XML report here (one test case per check).
        summary: write a Markdown summary here (a table of the checks).
        promote: register the model trained on all the data, gate it with ``validate_model`` and move the
            spec's alias to it when it passes (on the main branch). Only when every check passed.
        say: called with one line per finished check, for people watching.

    Returns:
        The report; ``report.passed`` is false when any check failed.

    Raises:
        SpecError: the spec cannot be read.
        InvalidInputError: ``sample_rows`` is not a positive number.

    Example:
        >>> report = run_ci("modelcycle.yaml", junit="reports/junit.xml")   # doctest: +SKIP
        >>> report.passed, [c.name for c in report.checks]                  # doctest: +SKIP
        (True, ['data validation', 'pipeline smoke run', 'gate: threshold roc_auc'])
    """
    from modelcycle.tracking import fluent

    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise InvalidInputError(f"sample_rows must be a whole number of rows ≥ 1, not {sample_rows!r}")
    project = spec if isinstance(spec, ProjectSpec) else load_spec(spec)
    if client is None:
        client = fluent.get_client()
    else:
        fluent.set_client(client)  # the pipeline's steps and validate_model log through the default client
    report = CiReport(project.name, spec=str(project.path))
    checks = _Checks(report, say or (lambda line: None))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelcycle-ci-") as tmp:
        sample = _check_data(project, sample_rows, Path(tmp), checks)
        output, run_id, on_sample = _check_pipeline(project, client, sample, checks)
        report.run_id = run_id
        _check_gate(project, client, output, checks)
        if promote:
            _promote(project, client, output, run_id, on_sample and sample is not None and not sample.complete, checks)
    report.seconds = time.perf_counter() - start
    if junit is not None:
        _write(junit, report.to_junit())
    if summary is not None:
        _write(summary, report.to_markdown())
    return report


def _write(path: str | Path, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


# --- data --------------------------------------------------------------------------------------
def _data_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(source).parts))


def _take(path: Path | str, rows: int, dest: Path) -> tuple[Any, bool]:
    """The first ``rows`` rows of one file (a path or an object-store URL), written to ``dest`` in the same format; the
    frame and whether it is the whole file."""
    import pandas as pd

    from modelcycle.store.locations import open_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    if _SUFFIXES[dest.suffix.lower()] == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(open_file(str(path)))
        batches, got = [], 0
        for batch in pf.iter_batches(batch_size=min(max(rows, 1), 65_536)):
            batches.append(batch)
            got += batch.num_rows
            if got >= rows:
                break
        table = pa.Table.from_batches(batches, schema=pf.schema_arrow).slice(0, rows)
        pq.write_table(table, dest)
        return table.to_pandas(), pf.metadata.num_rows <= rows
    with open_file(str(path)) as f:
        frame = pd.read_csv(f, nrows=rows + 1)
    complete = len(frame) <= rows
    frame = frame.iloc[:rows]
    frame.to_csv(dest, index=False)
    return frame, complete


def _read_sample(source: Path | str, rows: int, tmp: Path) -> _Sample:
    """The first ``rows`` rows of a data source (a folder, a file or an object-store URL), copied into ``tmp``: the
    checks and the pipeline read them there."""
    from modelcycle.store.locations import data_files, is_object_url

    if is_object_url(source):
        url = str(source)
        base = url.rstrip("/") + "/"
        files: list[tuple[Any, str]] = [(f, f[len(base):] if f.startswith(base) else f.rsplit("/", 1)[-1])
                                        for f, _ in data_files(url)]
        single = [f for f, _ in files] == [url]
        if not files:
            raise InvalidInputError(f"no .parquet or .csv files at {url}; put the training data there or fix data.source in the spec")
    else:
        source = Path(source)
        if not source.exists():
            raise InvalidInputError(f"the data source {source} does not exist; put the training data there or fix data.source in the spec")
        files = [(f, f.name if f == source else str(f.relative_to(source))) for f in _data_files(source)]
        single = source.is_file()
        if not files:
            raise InvalidInputError(f"no .parquet or .csv files in {source}; put the training data there "
                                    "(a project from `modelcycle init` writes an example with `python pipelines/training.py`)")
    return _take_sample(files, rows, tmp / "data", single)


def _take_sample(files: list[tuple[Any, str]], rows: int, folder: Path, single: bool) -> _Sample:
    """Rows from ``files`` (location, name in the copy) in order until ``rows`` are taken."""
    import pandas as pd

    frames, used, complete = [], 0, True
    for i, (f, rel) in enumerate(files):
        need = rows - sum(len(x) for x in frames)
        if need <= 0:
            complete = False  # files left unread
            break
        try:
            frame, whole = _take(f, need, folder / rel)
        except Exception as e:
            raise InvalidInputError(f"cannot read {f}: {e}") from None
        frames.append(frame)
        used = i + 1
        complete = complete and whole
    data = str(folder / files[0][1]) if single else str(folder)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _Sample(folder, data, frame, used, complete)


def _check_data(spec: ProjectSpec, rows: int, tmp: Path, checks: _Checks) -> _Sample | None:
    report = checks.report
    if spec.data_source is None:
        why = ("data: {source: predictions}: the training data is the labelled prediction log, which the agent hands to the "
               "pipeline; ci has no files to check" if spec.feedback_only else
               "the spec has no data: {source: ...}; the pipeline runs on its own default data")
        checks.add(CheckResult("data validation", "skipped", why))
        return None
    sample = None
    with checks.run("data validation") as check:
        sample = _read_sample(spec.data_source, rows, tmp)
        report.sample_rows, report.sample_files, report.sample_complete = len(sample.frame), sample.files, sample.complete
        what = f"{len(sample.frame):,} rows of {sample.files} file(s) in {_rel(spec, spec.data_source)}"
        check.details.update({"rows": len(sample.frame), "files": sample.files, "complete": sample.complete})
        if spec.schema is None:
            check.status = "skipped"
            check.message = f"the spec has no data.schema to validate {what} against; write one with `modelcycle data infer-schema`"
        else:
            from modelcycle.data import Schema, validate

            result = validate(sample.frame, Schema.load(spec.schema))
            check.details.update(result.to_dict())
            if result.passed:
                warned = "; ".join(f"{a.column}: {a.check}" for a in result.warnings[:3])
                check.message = f"{what} match {_rel(spec, spec.schema)}" + (f" (warnings: {warned})" if warned else "")
            else:
                problems = [f"{a.column}: {a.check} (expected {a.expected}, observed {a.observed}"
                            + (f", e.g. {', '.join(map(str, a.examples[:3]))})" if a.examples else ")") for a in result.errors]
                check.status = "failed"
                check.details["error_type"] = "DataValidationError"
                check.message = (f"{what} break {_rel(spec, spec.schema)}: " + "; ".join(problems[:3])
                                 + (f" and {len(problems) - 3} more" if len(problems) > 3 else ""))
                check.output = "\n".join(problems)
    return sample


def _rel(spec: ProjectSpec, path: Path | str) -> str:
    """``path`` as the spec's reader knows it: relative to the spec's folder, with a slash after a folder."""
    if isinstance(path, str):  # an object-store URL
        return path
    try:
        text = str(path.relative_to(spec.root))
    except ValueError:
        text = str(path)
    return text + "/" if path.is_dir() and text != "." else text


# --- pipeline ----------------------------------------------------------------------------------
def _contract(output: Any, target: str | None, pipeline: str) -> None:
    """The controller's contract: a dict with the fitted model and held-out rows that hold the target."""
    import pandas as pd

    expected = f"{{'model': <fitted model>, 'train': <training rows>, 'test': <held-out rows with {target!r}>}}"
    if not isinstance(output, dict) or "model" not in output or "test" not in output:
        got = f"a dict with keys {', '.join(map(repr, output))}" if isinstance(output, dict) else type(output).__name__
        raise InvalidInputError(f"pipeline {pipeline} must return {expected}; it returned {got}")
    if not hasattr(output["model"], "predict"):
        raise InvalidInputError(f"pipeline {pipeline} returned a {type(output['model']).__name__} as 'model'; return the fitted model")
    test = output["test"]
    if not isinstance(test, pd.DataFrame) or (target is not None and target not in test.columns):
        raise InvalidInputError(f"pipeline {pipeline}: 'test' must be a DataFrame with the target column {target!r}")


def _run_pipeline(spec: ProjectSpec, client: Any, data: str | None, experiment: str, cache: bool) -> tuple[Any, Any, bool]:
    """Run the spec's pipeline with its params, and ``data`` as its ``data`` parameter when it has one; whether it got ``data``."""
    from modelcycle.pipelines.loader import load_pipeline

    if not spec.pipeline:
        raise InvalidInputError(f"{spec.path}: the spec has no pipeline: to check; add pipeline: pipelines/training.py:training")
    pipe = load_pipeline(spec.pipeline)
    params = dict(spec.params)
    passed = data is not None and "data" in pipe.signature.parameters
    if passed:
        params["data"] = data
    result = pipe.run(client=client, experiment=experiment, cache=cache, **params)
    return pipe, result, passed


def _check_pipeline(spec: ProjectSpec, client: Any, sample: _Sample | None,
                    checks: _Checks) -> tuple[dict[str, Any] | None, str | None, bool]:
    """The smoke run: its output (None when it failed), its run, and whether it ran on the sample."""
    from modelcycle.errors import PipelineError

    if spec.data_source is not None and sample is None:
        checks.add(CheckResult("pipeline smoke run", "skipped", "no data sample to run the pipeline on (see data validation)"))
        return None, None, False
    output, run_id, passed_data = None, None, False
    with checks.run("pipeline smoke run") as check:
        try:
            pipe, result, passed_data = _run_pipeline(spec, client, sample.data if sample else None, f"{spec.name}-ci", cache=False)
        except PipelineError as e:
            run_id = getattr(e.result, "run_id", None)
            steps = getattr(e.result, "steps", {}) or {}
            check.details.update({"run_id": run_id, "steps": {n: s.status for n, s in steps.items()}})
            failed = [f"step {n}: {s.error}" for n, s in steps.items() if s.status == "failed"]
            check.output = "\n".join([str(e), *failed, f"the steps' logs and tracebacks: modelcycle pipeline show {run_id[:8]}"
                                       if run_id else ""]).strip()
            raise
        run_id = result.run_id
        _contract(result.output, _target(spec), pipe.name)
        output = result.output
        on = ((f"all {len(sample.frame):,} rows" if sample.complete else f"the first {len(sample.frame):,} rows")
              if sample and passed_data else
              "its default data (it has no 'data' parameter)" if sample else "its default data")
        check.details.update({"run_id": run_id, "steps": {n: s.status for n, s in result.steps.items()}})
        check.message = f"pipeline {pipe.name}: {len(result.steps)} steps on {on} (run {run_id[:8]})"
    return output, run_id, passed_data


# --- gate --------------------------------------------------------------------------------------
def _target(spec: ProjectSpec) -> str:
    """The label column: the spec's model.target, else the policy's ``target`` (``y`` by default), as ``validate_model`` reads it."""
    if spec.target:
        return spec.target
    from modelcycle.evaluation import Policy

    return Policy.coerce(spec.policy).target if spec.policy is not None else "y"


def _features(model: Any, frame: Any, target: str) -> list[str]:
    named = getattr(model, "feature_names_in_", None)
    return [str(c) for c in named] if named is not None else [c for c in frame.columns if c != target]


def _baseline(spec: ProjectSpec, client: Any, policy: Any) -> tuple[Any, str | None]:
    """The registered model the candidate is compared with (the alias the policy's improvement rule names), if any."""
    from modelcycle.registry.fluent import get_registry

    alias = (policy.improvement or {}).get("over") or spec.alias
    uri = f"models:/{spec.model}@{alias}"
    try:
        version = get_registry(client).get_model_version(spec.model, alias)
    except NotFoundError:
        return None, None
    return get_registry(client).load_model(uri), f"{alias} (version {version.version})"


def _check_gate(spec: ProjectSpec, client: Any, output: dict[str, Any] | None, checks: _Checks) -> None:
    if spec.policy is None:
        checks.add(CheckResult("gate", "skipped", "the spec has no model.policy; add one (e.g. policy: policy.yaml) so ci checks the model"))
        return
    if output is None:
        checks.add(CheckResult("gate", "skipped", "no model to check: the pipeline smoke run did not finish"))
        return
    start = time.perf_counter()
    try:
        verdict, evaluation = _verdict(spec, client, output)
    except Exception as e:
        checks.add(_fail(CheckResult("gate", "passed", seconds=time.perf_counter() - start), e))
        return
    seconds = (time.perf_counter() - start) / max(len(verdict.rules), 1)
    if not verdict.rules:
        checks.add(CheckResult("gate", "passed", "the policy has no rules", seconds))
    metrics = {k: v for k, v in evaluation.metrics.items() if not _nan(v)}
    for rule in verdict.rules:
        details = {**rule.to_dict(), "metrics": metrics}
        if not rule.passed:
            details["error_type"] = "GateFailed"
        checks.add(CheckResult(f"gate: {rule.rule}", "passed" if rule.passed else "failed", rule.detail, seconds, details))


def _verdict(spec: ProjectSpec, client: Any, output: dict[str, Any]) -> tuple[Any, Any]:
    """The policy applied to the smoke run's model on its test rows, against the baseline when one is registered."""
    from modelcycle.data import infer_schema, validate
    from modelcycle.evaluation import Policy, check_policy, evaluate_model

    policy = Policy.coerce(spec.policy)
    target = _target(spec)
    model, test, train = output["model"], output["test"], output.get("train")
    baseline, baseline_name = _baseline(spec, client, policy)
    slices = [policy.slices["column"]] if policy.slices else None
    evaluation = evaluate_model(model, test, target, "auto", slices, baseline, name="smoke-run model", baseline_name=baseline_name or "")
    data_errors = None
    if policy.require_data_validation and train is not None:  # as validate_model does: the test rows against the training rows
        found = validate(test.drop(columns=[target]), infer_schema(train[_features(model, train, target)]))
        data_errors = [f"{a.column}: {a.check}" for a in found.errors]
    return check_policy(policy, evaluation, evaluation.baseline, data_errors, baseline_name), evaluation


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


# --- promotion ---------------------------------------------------------------------------------
def _promote(spec: ProjectSpec, client: Any, output: dict[str, Any] | None, run_id: str | None, retrain: bool,
             checks: _Checks) -> None:
    """Register the model (trained again on all the data when ``retrain``), gate it with ``validate_model``, promote it on a pass."""
    failed = len(checks.report.failures)
    if failed or output is None:
        reason = f"{failed} check(s) failed" if failed else "there is no model to promote"
        checks.add(CheckResult("promotion", "skipped", f"nothing registered or promoted: {reason}"))
        return
    if retrain:  # the smoke run saw a sample: the model to promote is trained on all the data
        with checks.run("training on all the data") as check:
            pipe, result, _ = _run_pipeline(spec, client, str(spec.data_source), spec.name, cache=True)
            _contract(result.output, _target(spec), pipe.name)
            output, run_id = result.output, result.run_id
            check.details["run_id"] = run_id
            check.message = f"pipeline {pipe.name}: {len(result.steps)} steps on {_rel(spec, spec.data_source)} (run {run_id[:8]})"
        if checks.report.checks[-1].failed:
            checks.add(CheckResult("promotion", "skipped", "nothing registered or promoted: training on all the data failed"))
            return
    from modelcycle.registry.fluent import get_registry, validate_model

    registry = get_registry(client)
    version = None
    with checks.run("registration") as check:
        target = _target(spec)
        train = output.get("train", output["test"])
        features = _features(output["model"], train, target)
        run = client.start_run(experiment=spec.name, name="ci candidate", parent=run_id, tags={"modelcycle.ci": "promote"},
                               activate=False)
        try:
            logged = client.log_model(output["model"], run_id=run.id, reference_data=train[features])
        finally:
            run.end()
        version = registry.register_model(logged, spec.model, description="modelcycle ci --promote", tags={"source": "ci"})
        check.details.update({"model": spec.model, "version": version.version, "run_id": run.id})
        check.message = f"registered {spec.model} version {version.version} (run {run.id[:8]})"
    if version is None:
        return
    with checks.run("promotion") as check:
        verdict = validate_model(f"models:/{spec.model}/{version.version}", output["test"], spec.policy or {}, target=spec.target)
        check.details.update({"verdict": verdict.id, "version": version.version})
        if not verdict.passed:
            check.status = "failed"
            check.details["error_type"] = "GateFailed"
            check.message = f"{spec.model} version {version.version} failed the gate: " + "; ".join(verdict.failures())
        else:
            registry.promote(spec.model, version.version, alias=spec.alias, verdict=verdict, reason="modelcycle ci --promote")
            checks.report.promoted = {"model": spec.model, "alias": spec.alias, "version": version.version, "verdict": verdict.id}
            check.message = f"{spec.model}@{spec.alias} → version {version.version} (verdict {verdict.id[:8]})"
