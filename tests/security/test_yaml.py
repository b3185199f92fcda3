"""YAML bombs: aliases that expand to billions of values, recursive aliases and deep nesting are refused fast, in one line."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelcycle import _yaml
from modelcycle.automation import SpecError, load_spec
from modelcycle.cli import app
from modelcycle.data import Schema
from modelcycle.errors import InvalidInputError
from modelcycle.evaluation import Policy
from modelcycle.pipelines.core import convert_cli_value
from modelcycle.pipelines.loader import load_pipeline

SECONDS = 10.0  # generous for a busy machine; reading the bomb used to take more than 120 s
DEEP = 10_000


@pytest.fixture(autouse=True, params=_yaml._LOADERS, ids=lambda loader: loader.__name__.strip("_"))
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Every test runs with libyaml's parser (when PyYAML has it) and with the pure-Python one."""
    monkeypatch.setattr(_yaml, "SafeLoader", request.param)
    return request.param


def laughs(levels: int = 9, width: int = 9) -> list[str]:
    """The billion laughs, one anchor a line: line i holds ``width`` aliases of line i - 1, width ** levels values in all.

    Counting expanded nodes, l0 is 10, l1 91, l2 820, l3 7,381: the first alias on line l4 goes over 10,000.
    """
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return lines


BOMB, BOMB_LINE = "\n".join(laughs()) + "\n", 4  # the bomb's lines are numbered from 0 here
MERGE_BOMB = "\n".join(
    ["m0: &m0 {" + ", ".join(f"k{i}: lol" for i in range(9)) + "}"]
    + [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, 9)]
) + "\n"
RECURSIVE = "ok: 1\nloop: &loop\n  - a\n  - *loop\n"  # the alias is on line 3 of this text (0-based)
FLOW_DEEP = "deep: " + "[" * DEEP + "]" * DEEP + "\n"
BLOCK_DEEP = "deep:\n  " + "- " * DEEP + "x\n"


def timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        call()
    except Exception as e:  # the test looks at what came out
        return e, time.monotonic() - start
    return None, time.monotonic() - start


# Each file reader gets a valid first line, then the text under test from line 2.


def read_spec(tmp_path: Path, body: str) -> Any:
    (tmp_path / "modelcycle.yaml").write_text("name: churn\n" + body)
    return load_spec(tmp_path)


def read_policy(tmp_path: Path, body: str) -> Any:
    (tmp_path / "policy.yaml").write_text("target: y\n" + body)
    return Policy.load(tmp_path / "policy.yaml")


def read_schema(tmp_path: Path, body: str) -> Any:
    (tmp_path / "schema.yaml").write_text("columns: {age: {type: integer}}\n" + body)
    return Schema.load(tmp_path / "schema.yaml")


FLOW = '''
import modelcycle as mc


@mc.step
def fit(C: float, options: dict) -> float:
    return C * len(options)


@mc.pipeline
def tiny(C: float = 1.0, options: dict | None = None):
    return fit(C, options or {})
'''


def read_config(tmp_path: Path, body: str) -> Any:
    from modelcycle.cli.pipeline import _params

    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "params.yaml").write_text("C: 0.5\n" + body)
    return _params(load_pipeline(f"{tmp_path / 'flow.py'}:tiny"), tmp_path / "params.yaml", [])


READERS = {"spec": (read_spec, SpecError), "policy": (read_policy, InvalidInputError), "schema": (read_schema, InvalidInputError),
           "config": (read_config, InvalidInputError)}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("body", "line", "words"), [
    (BOMB, 2 + BOMB_LINE, f"YAML aliases expand to more than {_yaml.MAX_ALIAS_NODES:,} values; write the values out or use fewer aliases"),
    (MERGE_BOMB, 5, "YAML aliases expand to more than"),
    (RECURSIVE, 5, "the YAML alias *loop is used inside its own anchor &loop"),
    (FLOW_DEEP, 2, f"YAML nested more than {_yaml.MAX_DEPTH} levels deep"),
    (BLOCK_DEEP, 3, f"YAML nested more than {_yaml.MAX_DEPTH} levels deep"),
], ids=["billion-laughs", "merge-bomb", "recursive", "deep-flow", "deep-block"])
def test_every_file_reader_refuses_a_bomb_quickly_in_one_line(tmp_path: Path, reader: str, body: str, line: int, words: str) -> None:
    read, error = READERS[reader]
    e, took = timed(lambda: read(tmp_path, body))
    assert took < SECONDS, f"{reader} took {took:.1f} s"
    assert isinstance(e, error) and not isinstance(e, RecursionError), repr(e)
    message = str(e)
    assert "\n" not in message and f"line {line}:" in message and words in message, message


def test_the_merge_bomb_is_counted_where_it_goes_over() -> None:
    # m0 is 19 nodes, m1 is 1 + 2 + 9 * 19 = 174, m2 is 1 + 2 + 9 * 174 = 1,569, m3's aliases pass 10,000 on line 4.
    with pytest.raises(InvalidInputError, match=r"^m\.yaml, line 4: YAML aliases expand"):
        _yaml.load(MERGE_BOMB, source="m.yaml")


def test_ordinary_anchors_and_merge_keys_still_load_in_a_spec(tmp_path: Path) -> None:
    spec = read_spec(tmp_path, "monitor: &monitor {window: 2h, drift: {share: 0.3}}\n"
                               "params:\n  base: &base {C: 0.5, penalty: l2}\n  tuned:\n    <<: *base\n    C: 0.1\n  again: *base\n")
    assert spec.window == "2h" and spec.drift_share == 0.3
    assert spec.params == {"base": {"C": 0.5, "penalty": "l2"}, "tuned": {"C": 0.1, "penalty": "l2"}, "again": {"C": 0.5, "penalty": "l2"}}


def test_a_merged_key_is_checked_and_named_by_the_line_it_is_written_on(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"modelcycle.yaml, line 2: unknown key monitor.windw"):
        read_spec(tmp_path, "params: {base: &base {windw: 1h}}\nmonitor:\n  <<: *base\n")


def test_ordinary_anchors_and_merge_keys_still_load_in_a_policy(tmp_path: Path) -> None:
    policy = read_policy(tmp_path, "thresholds: &t {roc_auc: '>= 0.8'}\nimprovement: {<<: {metric: roc_auc, min_delta: 0.01}, over: champion}\n")
    assert policy.thresholds == {"roc_auc": (">=", 0.8)}
    assert policy.improvement == {"metric": "roc_auc", "over": "champion", "min_delta": 0.01}


def test_ordinary_anchors_and_merge_keys_still_load_in_a_schema(tmp_path: Path) -> None:
    text = "columns:\n  age: &share {type: integer, min: 0, max: 120}\n  tenure: {<<: *share, max: 80}\n  score: *share\n"
    schema = Schema.from_yaml(text)
    assert {name: (c.type, c.min, c.max) for name, c in schema.columns.items()} == {
        "age": ("integer", 0, 120), "tenure": ("integer", 0, 80), "score": ("integer", 0, 120)}


def test_ordinary_anchors_and_merge_keys_still_load_in_a_config(tmp_path: Path) -> None:
    params = read_config(tmp_path, "base: &base {depth: 3, lr: 0.1}\noptions: {<<: *base, lr: 0.05}\n")
    assert params == {"C": 0.5, "base": {"depth": 3, "lr": 0.1}, "options": {"depth": 3, "lr": 0.05}}


def one_line(body: list[str]) -> str:
    """A document on one line, as a ``-p name=value`` value is."""
    return "{" + ", ".join(body) + "}"


@pytest.mark.parametrize(("text", "words"), [
    (one_line(laughs()), "YAML aliases expand to more than"),
    ("&a [x, *a]", "the YAML alias *a is used inside its own anchor &a"),
    ("[" * DEEP + "]" * DEEP, f"YAML nested more than {_yaml.MAX_DEPTH} levels deep"),
], ids=["billion-laughs", "recursive", "deep"])
def test_a_pipeline_parameter_value_refuses_a_bomb(text: str, words: str) -> None:
    e, took = timed(lambda: convert_cli_value("tiny", "options", text, dict))
    assert took < SECONDS
    assert isinstance(e, InvalidInputError), repr(e)
    assert str(e).startswith("parameter 'options' of pipeline 'tiny', line 1: ") and words in str(e) and "\n" not in str(e)


def test_a_pipeline_parameter_value_keeps_working() -> None:
    assert convert_cli_value("tiny", "options", "{a: &x [1, 2], b: *x}", dict) == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(InvalidInputError, match=r"parameter 'options' of pipeline 'tiny': '\[1, 2' is not valid YAML"):
        convert_cli_value("tiny", "options", "[1, 2", dict)


def test_the_budget_is_on_expanded_values() -> None:
    values = "v: &v [" + ", ".join(map(str, range(999))) + "]\n"  # 1,000 nodes: the list and its values
    assert len(_yaml.load(values + "uses: [" + ", ".join(["*v"] * 10) + "]\n")["uses"]) == 10  # exactly 10,000
    with pytest.raises(InvalidInputError, match=r"^YAML, line 2: YAML aliases expand to more than 10,000 values"):
        _yaml.load(values + "uses: [" + ", ".join(["*v"] * 10) + ", *v]\n")


def test_the_depth_bound_is_exact() -> None:
    deepest = "[" * _yaml.MAX_DEPTH + "]" * _yaml.MAX_DEPTH
    value = _yaml.load(deepest)
    for _ in range(_yaml.MAX_DEPTH - 1):
        value = value[0]
    assert value == []
    with pytest.raises(InvalidInputError, match="nested more than 100 levels deep"):
        _yaml.load("[" + deepest + "]")


def test_syntax_errors_are_still_yaml_errors_with_their_line() -> None:
    with pytest.raises(_yaml.YAMLError) as e:
        _yaml.load("a: [1, 2\nb: 3\n")
    assert e.value.problem_mark is not None  # type: ignore[attr-defined]
    with pytest.raises(_yaml.YAMLError, match="undefined alias"):
        _yaml.load("a: *nowhere\n")
    with pytest.raises(_yaml.YAMLError, match="could not determine a constructor"):
        _yaml.load("a: !!python/object:os.system x\n")


def test_the_error_class_is_the_callers() -> None:
    with pytest.raises(SpecError, match=r"^spec\.yaml, line 1: the YAML alias"):
        _yaml.compose("&a [*a]", source="spec.yaml", error=SpecError)


def test_compose_applies_merge_keys_and_keeps_lines() -> None:
    node = _yaml.compose("base: &b {x: 1, y: 2}\nmine:\n  <<: *b\n  y: 3\n")
    assert node is not None
    mine = node.value[1][1]
    assert [(k.value, k.start_mark.line + 1) for k, _ in mine.value] == [("x", 1), ("y", 1), ("y", 4)]
    assert _yaml.construct(mine) == {"x": 1, "y": 3}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELCYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.mark.parametrize("body", [BOMB, RECURSIVE, FLOW_DEEP], ids=["billion-laughs", "recursive", "deep"])
@pytest.mark.parametrize("command", ["ci", "models validate", "data validate", "pipeline run --config", "pipeline run -p"])
def test_the_command_line_says_one_line_and_exits_1(home: Path, command: str, body: str) -> None:
    (home / "data.csv").write_text("age,y\n30,1\n")
    (home / "flow.py").write_text(FLOW)
    first = {"ci": "name: churn\n", "models validate": "target: y\n", "data validate": "columns: {}\n", "pipeline run --config": "C: 0.5\n"}
    path = home / "file.yaml"
    path.write_text(first.get(command, "") + body)
    if command == "ci":
        (home / "modelcycle.yaml").write_text(path.read_text())
        args = ["ci", "--spec", str(home)]
    elif command == "models validate":
        args = ["models", "validate", "churn", "1", "--data", str(home / "data.csv"), "--policy", str(path)]
    elif command == "data validate":
        args = ["data", "validate", str(home / "data.csv"), "--schema", str(path)]
    elif command == "pipeline run --config":
        args = ["pipeline", "run", f"{home / 'flow.py'}:tiny", "--config", str(path)]
    else:
        flat = {BOMB: one_line(laughs()), RECURSIVE: "&loop [a, *loop]", FLOW_DEEP: "[" * DEEP + "]" * DEEP}[body]
        args = ["pipeline", "run", f"{home / 'flow.py'}:tiny", "-p", f"options={flat}"]
    start = time.monotonic()
    out = CliRunner().invoke(app, args)
    assert time.monotonic() - start < SECONDS
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output and (out.exception is None or isinstance(out.exception, SystemExit)), out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.output
    line = 1 if command == "pipeline run -p" else {BOMB: 2 + BOMB_LINE, RECURSIVE: 5, FLOW_DEEP: 2}[body]
    assert f"line {line}:" in lines[0], lines[0]
