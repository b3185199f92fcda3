"""A missing optional library is one line naming the extra that installs it, never a stack trace.

The optional libraries are installed in the test environment and cannot be uninstalled from it, so
each case runs the real ``modelcycle`` command (or a Python script) in a subprocess whose PYTHONPATH
starts with a folder holding a ``sitecustomize.py``: it puts a ``sys.meta_path`` finder first that
raises ``ModuleNotFoundError(name=...)`` for the top-level modules listed in ``MODELCYCLE_TEST_BLOCK``,
as Python does for a library that is not installed. That finder is the only fake; the store, the
registry, the model package and the command line are all real.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("modelcycle")

SITECUSTOMIZE = '''
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("MODELCYCLE_TEST_BLOCK", "").split(",")))


class _NotInstalled:
    """Behave as if the blocked top-level modules were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if _BLOCKED:
    sys.meta_path.insert(0, _NotInstalled())
'''

MAKE_MODEL = '''
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import modelcycle as mc
from modelcycle.registry import Registry

client = mc.Client(mc.Settings.from_env())
X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
y = (X["a"] > 19).astype(int)
with client.start_run(experiment="extras") as run:
    logged = run.log_model(LogisticRegression().fit(X, y), "model", input_example=X.head(3))
registry = Registry(client)
version = registry.register_model(logged.uri, "m")
registry.set_alias("m", "champion", version.version)
X.to_csv("data.csv", index=False)
client.close()
'''

PIPELINES = '''
import modelcycle as mc


@mc.step
def one() -> int:
    return 1


@mc.pipeline
def tiny():
    return one()


@mc.step
def search() -> float:
    return mc.tune(lambda p: p["x"], {"x": mc.choice([1.0, 2.0])}, n_trials=2).best_value


@mc.pipeline
def tuned():
    return search()
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a store holding a registered scikit-learn model ``m@champion``, its data and two pipelines."""
    root = tmp_path_factory.mktemp("extras")
    (root / "block").mkdir()
    (root / "block" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (root / "pipelines.py").write_text(PIPELINES)
    made = subprocess.run([sys.executable, "-c", MAKE_MODEL], cwd=root, env=_env(root, ""), capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stderr
    return root


def _env(root: Path, blocked: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env.update(MODELCYCLE_HOME=str(root / ".modelcycle"), MODELCYCLE_CAPTURE="0", MODELCYCLE_TEST_BLOCK=blocked, COLUMNS="80",
               PYTHONPATH=os.pathsep.join([str(root / "block"), *filter(None, [os.environ.get("PYTHONPATH")])]), **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line(out: subprocess.CompletedProcess[str], extra: str) -> str:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and f"pip install 'modelcycle[{extra}]'" in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("blocked", "args", "extra", "words"),
    [
        ("fastapi", ["serve", "models:/m@champion"], "serve", "modelcycle serve needs FastAPI, which is not installed"),
        ("uvicorn", ["serve", "models:/m@champion"], "serve", "modelcycle serve needs uvicorn"),
        ("prometheus_client", ["serve", "models:/m@champion"], "serve", "needs prometheus-client"),
        ("skops", ["serve", "models:/m@champion"], "sklearn", "loading a scikit-learn model needs skops"),
        ("skops", ["predict", "models:/m@champion", "data.csv", "-o", "scored.parquet"], "sklearn",
         "loading a scikit-learn model needs skops"),
        ("sklearn", ["predict", "models:/m@champion", "data.csv", "-o", "scored.parquet"], "sklearn", "needs scikit-learn"),
        ("sklearn", ["demo"], "demo", "modelcycle demo needs scikit-learn"),
        ("sklearn", ["demo", "--level0"], "demo", "modelcycle demo needs scikit-learn"),
        ("fastapi", ["demo"], "demo", "modelcycle demo needs FastAPI"),
        ("sklearn,fastapi", ["demo"], "demo", "modelcycle demo needs scikit-learn, FastAPI, which are not installed"),
        ("dask,distributed", ["pipeline", "run", "pipelines.py:tiny", "--executor", "dask"], "dask", "executor='dask' needs Dask"),
        ("optuna", ["pipeline", "run", "pipelines.py:tuned"], "tune", "tuning needs Optuna"),
    ],
)
def test_a_command_without_its_extra_says_what_to_install(project: Path, blocked: str, args: list[str], extra: str, words: str) -> None:
    if args[0] == "serve":
        args = [*args, "--port", str(_free_port())]  # were the block to fail, it would serve here (and time out)
    out = subprocess.run([str(EXE), *args], cwd=project, env=_env(project, blocked), capture_output=True, text=True, timeout=120)
    assert words in _one_line(out, extra)


def test_a_postgres_uri_without_psycopg(project: Path) -> None:
    env = _env(project, "psycopg", MODELCYCLE_STORE_URI="postgresql+psycopg://u:p@127.0.0.1:1/db")
    out = subprocess.run([str(EXE), "runs", "ls"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert "a PostgreSQL store needs psycopg" in _one_line(out, "postgres")


def test_the_block_is_what_fails(project: Path) -> None:
    """The same commands work without the block: the failures above come from the missing library alone."""
    out = subprocess.run([str(EXE), "predict", "models:/m@champion", "data.csv", "-o", "scored.parquet"], cwd=project,
                         env=_env(project, ""), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (project / "scored.parquet").is_file()


def test_load_model_from_python_raises_missing_dependency_error(project: Path) -> None:
    script = textwrap.dedent('''
        import modelcycle as mc
        from modelcycle.errors import MissingDependencyError, ModelcycleError

        try:
            mc.load_model("models:/m@champion")
        except MissingDependencyError as e:
            assert isinstance(e, ModelcycleError) and isinstance(e, ImportError)
            print(f"{e.extra}|{e.module}|{e}")
        else:
            print("loaded")
    ''')
    out = subprocess.run([sys.executable, "-c", script], cwd=project, env=_env(project, "skops"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    extra, module, message = out.stdout.strip().split("|", 2)
    assert (extra, module.split(".")[0]) == ("sklearn", "skops")
    assert "pip install 'modelcycle[sklearn]'" in message and "skops" in message


def test_require_names_the_extra_of_the_library_that_is_missing(project: Path) -> None:
    """A library that is there but needs a missing one (skops without scikit-learn) names the one that is missing."""
    script = "from modelcycle._deps import require\ntry:\n    require('skops.io', 'x')\nexcept ImportError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", script], cwd=project, env=_env(project, "sklearn"), capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "x needs scikit-learn, which is not installed: pip install 'modelcycle[sklearn]'", out.stderr
