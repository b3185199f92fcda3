"""The command line through Typer's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelcycle.cli import app
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MODELCYCLE_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    client = Client(Settings.for_home(home, capture=False))
    for model, auc, c in [("rf", 0.91, 1), ("lr", 0.84, 2), ("rf", 0.70, 3)]:
        with client.start_run(experiment="churn", name=f"{model}-{c}", params={"model": model, "C": c}) as run:
            run.log_metric("auc", auc)
            run.log_text("hello", "notes/hello.txt")
    client.close()
    return home


runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_runs_rm_asks_first_and_yes_skips_the_question(home: Path) -> None:
    ids = [r["run_id"] for r in json.loads(invoke("runs", "ls", "--json").output)]
    out = runner.invoke(app, ["runs", "rm", ids[0]], input="n\n")
    assert out.exit_code == 1 and "[y/N]" in out.output
    assert len(json.loads(invoke("runs", "ls", "--json").output)) == 3, "answered no: nothing deleted"
    out = runner.invoke(app, ["runs", "rm", ids[0]], input="")  # no terminal, no answer: no
    assert out.exit_code == 1 and len(json.loads(invoke("runs", "ls", "--json").output)) == 3
    assert invoke("runs", "rm", ids[0], "--yes").exit_code == 0
    assert len(json.loads(invoke("runs", "ls", "--json").output)) == 2


def test_runs_ls_table_and_json(home: Path) -> None:
    out = invoke("runs", "ls", "-e", "churn", "-f", "metrics.auc > 0.8", "-o", "metrics.auc DESC")
    assert out.exit_code == 0, out.output
    assert "rf-1" in out.output and "lr-2" in out.output and "rf-3" not in out.output
    assert out.output.index("rf-1") < out.output.index("lr-2")
    data = json.loads(invoke("runs", "ls", "--json", "-o", "metrics.auc").output)
    assert [r["name"] for r in data] == ["rf-3", "lr-2", "rf-1"]
    assert data[0]["metrics"] == {"auc": 0.7} and data[0]["status"] == "FINISHED"


def test_runs_show_and_compare(home: Path) -> None:
    runs = json.loads(invoke("runs", "ls", "--json", "-o", "name").output)
    ids = [r["run_id"] for r in runs]
    out = invoke("runs", "show", ids[0][:8])
    assert out.exit_code == 0, out.output
    assert "lr-2" in out.output and "0.84" in out.output and "notes/hello.txt" in out.output
    shown = json.loads(invoke("runs", "show", ids[0], "--json").output)
    assert shown["params"] == {"model": "lr", "C": "2"} and "packages" not in shown["environment"]
    cmp = json.loads(invoke("runs", "compare", ids[0], ids[1], "--json").output)
    rows = {(r["kind"], r["key"]): r for r in cmp["rows"]}
    assert rows[("metrics", "auc")]["differs"] and rows[("params", "C")]["values"] == ["2", "1"]
    assert invoke("runs", "compare", ids[0], ids[1]).exit_code == 0


def test_experiments_ls(home: Path) -> None:
    data = json.loads(invoke("experiments", "ls", "--json").output)
    assert [(e["name"], e["runs"]) for e in data] == [("churn", 3)]
    assert "churn" in invoke("experiments", "ls").output


def test_download_and_gc(home: Path, tmp_path: Path) -> None:
    run_id = json.loads(invoke("runs", "ls", "--json").output)[0]["run_id"]
    out = invoke("runs", "download", run_id, "notes/hello.txt", "-o", str(tmp_path / "h.txt"))
    assert out.exit_code == 0, out.output
    assert (tmp_path / "h.txt").read_text() == "hello"
    assert invoke("runs", "rm", run_id, "--yes").exit_code == 0
    gc = json.loads(invoke("gc", "--grace", "0", "--json").output)
    assert gc["removed"] == 0, "the other runs still use the same bytes"


def test_rm_checks_everything_before_it_asks(home: Path) -> None:
    """An unknown run, or one whose model is registered, is refused before the question, and nothing is deleted."""
    from sklearn.linear_model import LogisticRegression

    from modelcycle.registry import Registry

    client = Client(Settings.for_home(home, capture=False))
    with client.start_run(experiment="churn", name="registered") as run:
        logged = client.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), reference_data=[[0.0], [1.0]])
        registered = run.id
    Registry(client).register_model(logged, "churn")
    with client.start_run(experiment="churn", name="parent") as parent, client.start_run(name="child") as child:
        pass
    client.close()
    before = len(json.loads(invoke("runs", "ls", "--json").output))
    for ids in ([registered], [parent.id, registered], [parent.id, "ffffffffff"]):
        out = runner.invoke(app, ["runs", "rm", *ids], input="y\n")
        assert out.exit_code == 1 and "Delete" not in out.output, out.output
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), out.output
        assert len(json.loads(invoke("runs", "ls", "--json").output)) == before, "nothing was deleted"
    assert "churn/1" in runner.invoke(app, ["runs", "rm", registered]).output
    asked = runner.invoke(app, ["runs", "rm", parent.id, child.id], input="y\n")
    assert asked.exit_code == 0 and "and 1 child run(s)?" in asked.output and "deleted 2 run(s)" in asked.output, asked.output
    assert len(json.loads(invoke("runs", "ls", "--json").output)) == before - 2
    live_client = Client(Settings.for_home(home, capture=False))
    live = live_client.start_run(experiment="churn", name="live")  # a run whose process still beats
    live_client.flush()
    refused = runner.invoke(app, ["runs", "rm", live.id, "-y"])
    assert refused.exit_code == 1 and "still RUNNING" in refused.output and "--force" in refused.output
    assert runner.invoke(app, ["runs", "rm", live.id, "-y", "--force"]).exit_code == 0
    live_client._store = None  # its run is gone: nothing of it is written at close
    live._ended = True


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("runs", "show", "ffffffffff"), "no run id starts with"),
        (("runs", "ls", "-f", "metrics.auc >>"), "position"),
        (("runs", "ls", "-e", "nope"), "experiment 'nope' does not exist"),
        (("runs", "compare", "abc"), "at least two"),
    ],
)
def test_errors_are_one_line_and_exit_1(home: Path, args: tuple[str, ...], words: str) -> None:
    out = invoke(*args)
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], out.output
    assert "Traceback" not in out.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("runs", "show"), "error: Missing argument 'RUN'. Try 'modelcycle runs show --help'."),
        (("runs", "ls", "--bogus"), "error: No such option: --bogus. Try 'modelcycle runs ls --help'."),
        (("runs", "ls", "-n", "0"), "Try 'modelcycle runs ls --help'."),
        (("models", "promote", "churn", "first"), "Try 'modelcycle models promote --help'."),
        (("nope",), "error: No such command 'nope'. Try 'modelcycle --help'."),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(home: Path, args: tuple[str, ...], line: str) -> None:
    out = runner.invoke(app, list(args), prog_name="modelcycle")
    assert out.exit_code == 2, out.output
    lines = [x for x in out.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and line in lines[0], out.output


def test_empty_store_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELCYCLE_HOME", str(tmp_path / "empty"))
    assert "No runs yet" in invoke("runs", "ls").output


def test_real_subprocess(home: Path) -> None:
    env = {**os.environ, "MODELCYCLE_HOME": str(home)}
    exe = Path(sys.executable).with_name("modelcycle")
    out = subprocess.run([str(exe), "runs", "ls", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("modelcycle ")
    bad = subprocess.run([str(exe), "runs", "show", "zzz"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error:")
    usage = subprocess.run([str(exe), "runs", "show"], env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and usage.stderr == "error: Missing argument 'RUN'. Try 'modelcycle runs show --help'.\n", usage.stderr


def test_download_names_the_artifact_it_cannot_write(home: Path, tmp_path: Path) -> None:
    """A run logged before names were checked may hold a file 'a' and a file 'a/b': one line, exit 1, the rest written."""
    import time

    client = Client(Settings.for_home(home, capture=False))
    with client.start_run(experiment="old", name="clash") as run:
        run.log_text("file", "a")
        digest, size = client.artifact_store.put_bytes(b"inside")
        client.buffer.artifacts.append((run.id, "a/b", digest, size, time.time()))
    client.close()
    out = invoke("runs", "download", run.id, "-o", str(tmp_path / "out"))
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "'a'" in lines[0] and "'a/b'" in lines[0], out.output
    assert "Traceback" not in out.output and isinstance(out.exception, SystemExit), out.exception
    assert (tmp_path / "out" / "a" / "b").read_bytes() == b"inside"


EVIL = "\x1b[31mred\x1b[0m\r\nforged line\x07\x01 [bold]markup[/]"


def test_stored_strings_are_printed_escaped_and_json_stays_exact(home: Path) -> None:
    """Names and values come from whoever logged them: printed raw, they could rewrite the terminal."""
    import time

    client = Client(Settings.for_home(home, capture=False))
    with client.start_run(experiment="churn", name=EVIL, params={"p": EVIL}, tags={"t": EVIL}) as run:
        digest, size = client.artifact_store.put_bytes(b"x")
        client.buffer.artifacts.append((run.id, "old\x1b]0;title\x07.txt", digest, size, time.time()))  # logged before names were checked
    client.close()
    for args in (("runs", "show", run.id), ("runs", "ls", "-e", "churn"), ("runs", "compare", run.id, run.id)):
        out = invoke(*args)
        assert out.exit_code == 0, out.output
        assert not set(out.output) & {"\x1b", "\r", "\x07", "\x01"}, (args, out.output)
    shown = invoke("runs", "show", run.id).output
    assert "\\x1b[31mred" in shown and "\\r\\nforged line\\x07\\x01" in shown and "[bold]markup[/]" in shown
    assert "old\\x1b]0;title\\x07.txt" in shown
    data = json.loads(invoke("runs", "show", run.id, "--json").output)
    assert data["name"] == EVIL and data["params"]["p"] == EVIL and data["tags"]["t"] == EVIL


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _leaves(command, path: tuple[str, ...] = ()):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path), command


def test_every_command_takes_json_as_the_readme_says() -> None:
    """The README names the commands without --json; every other command of the app has it."""
    import re

    import typer.main

    exempt_text = re.search(r"Every command takes `--json` for scripts \(all but ([^)]*)\)", README).group(1)
    exempt = set(re.findall(r"`modelcycle ([^`]+)`", exempt_text))
    leaves = dict(_leaves(typer.main.get_command(app)))
    assert exempt and exempt <= set(leaves), exempt
    without = {path for path, command in leaves.items() if "--json" not in {o for p in command.params for o in getattr(p, "opts", [])}}
    assert without == exempt


def _ids_under(data, key: str = "", found: list | None = None) -> list[tuple[str, str]]:
    """Every (key, string) in a JSON document, lists under their key."""
    found = [] if found is None else found
    if isinstance(data, dict):
        for k, v in data.items():
            _ids_under(v, k, found)
    elif isinstance(data, list):
        for v in data:
            _ids_under(v, key, found)
    elif isinstance(data, str):
        found.append((key, data))
    return found


def test_json_names_a_run_run_id_everywhere(home: Path, tmp_path: Path) -> None:
    """One rule: a run's id sits under run_id (run_ids for a list; parent_id and reproduces, as in filters), never id."""
    client = Client(Settings.for_home(home, capture=False))
    with client.start_run(experiment="churn", name="parent") as parent, client.start_run(name="child"):
        pass
    client.close()
    runs = json.loads(invoke("runs", "ls", "--json").output)
    ids = {r["run_id"] for r in runs}
    assert parent.id in ids and len(ids) == 5
    first = runs[-1]["run_id"]
    outputs = {
        "runs ls": runs,
        "runs show": json.loads(invoke("runs", "show", first, "--json").output),
        "runs compare": json.loads(invoke("runs", "compare", first, parent.id, "--json").output),
        "runs reproduce": json.loads(invoke("runs", "reproduce", first, "--json").output),
        "runs download": json.loads(invoke("runs", "download", first, "notes/hello.txt", "-o", str(tmp_path / "h.txt"), "--json").output),
        "runs rm": json.loads(invoke("runs", "rm", parent.id, "--yes", "--json").output),
    }
    assert len(outputs["runs rm"]["run_ids"]) == 2 and outputs["runs download"]["files"] == [str(tmp_path / "h.txt")]
    for command, data in outputs.items():
        keys = {key for key, value in _ids_under(data) if value in ids}
        assert keys and keys <= {"run_id", "run_ids", "parent_id", "reproduces"}, (command, keys)


def test_infer_schema_and_init_print_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"age": [30, 41, 25], "city": ["Lyon", "Oslo", "Lyon"]}).to_parquet(tmp_path / "d.parquet")
    schema = runner.invoke(app, ["data", "infer-schema", "d.parquet", "-o", "s.yaml", "--json"])
    assert schema.exit_code == 0, schema.output
    data = json.loads(schema.output)
    assert data["path"] == "s.yaml" and data["columns"]["age"]["min"] == 0 and (tmp_path / "s.yaml").is_file()
    made = runner.invoke(app, ["init", "churn", "--json"])
    assert made.exit_code == 0, made.output
    project = json.loads(made.output)
    assert project["path"] == str(tmp_path / "churn") and "modelcycle.yaml" in project["files"]
    assert all((tmp_path / "churn" / f).is_file() for f in project["files"])


def test_tables_sent_to_a_pipe_are_not_cut_to_80_columns(tmp_path: Path) -> None:
    """`modelcycle runs ls | less` (no terminal, no COLUMNS) shows whole values, as a terminal of 200 columns would."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    client = Client(Settings.for_home(home, capture=False))
    name = "a-run-with-a-rather-long-descriptive-name"
    with client.start_run(experiment="churn", name=name, params={"learning_rate": 0.05, "max_depth": 7}) as run:
        run.log_metrics({"validation_roc_auc": 0.91234, "validation_log_loss": 0.2345})
    client.close()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"MODELCYCLE_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "modelcycle", "runs", "ls"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) > 80, out.stdout  # wider than the 80 columns rich assumes of a pipe
    header = next(line for line in lines if "learning_rate" in line)
    assert "max_depth" in header and header.count("validation_") == 2 and "a-run-with-a-rather" in out.stdout, out.stdout
