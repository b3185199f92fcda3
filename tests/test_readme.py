"""What the README says about installing and configuring modelcycle, checked against the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from modelcycle.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _default(variable: str) -> str:
    """The first code span of the default column of ``variable``'s row in the table of environment variables."""
    row = next(line for line in README.splitlines() if line.startswith(f"| `{variable}` |"))
    cell = row.split("|")[2]
    return re.search(r"`([^`]+)`", cell).group(1)


def test_the_default_stores_are_where_the_readme_says(tmp_path: Path) -> None:
    """The default database and artifacts live in the MODELCYCLE_HOME folder, not in the user's home directory."""
    for env, cwd in (({"MODELCYCLE_HOME": str(tmp_path / "h")}, tmp_path), ({"HOME": str(tmp_path / "user")}, tmp_path / "project")):
        cwd.mkdir(exist_ok=True)
        s = Settings.from_env(env, cwd=cwd)
        assert s.home == (tmp_path / "h" if "MODELCYCLE_HOME" in env else cwd / ".modelcycle").resolve()
        assert _default("MODELCYCLE_STORE_URI").replace("<MODELCYCLE_HOME>", str(s.home)) == s.store_uri
        assert _default("MODELCYCLE_ARTIFACT_URI").replace("<MODELCYCLE_HOME>", str(s.home)) == s.artifact_uri
    assert "$HOME" not in README


def test_the_pip_install_line_names_real_extras() -> None:
    """The install line and the list of extras name exactly the extras pyproject.toml defines for users."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]) - {"dev", "bench"}
    line = next(line for line in README.splitlines() if line.startswith("pip install 'modelcycle["))
    assert set(re.search(r"\[([^\]]+)\]", line).group(1).split(",")) <= extras
    listed = README[README.index("The extras:"):]
    listed = listed[: listed.index("\n\n")]
    assert set(re.findall(r"`([a-z0-9]+)`", listed)) - {"modelcycle"} == extras
