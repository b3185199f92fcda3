"""``modelcycle init``: a new project folder with a spec, a pipeline, its tests, a gate and CI/CD that run out of the box."""

from __future__ import annotations

import re
from pathlib import Path

from modelcycle._templates import render
from modelcycle.errors import InvalidInputError

__all__ = ["PROJECT_FILES", "init_project"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TOKEN = "__PROJECT__"  # replaced by the project's name in every template

# the files of a new project, in the order `modelcycle init` lists them (their text: modelcycle/templates/project/)
PROJECT_FILES: tuple[str, ...] = (
    "modelcycle.yaml", "pipelines/training.py", "schema.yaml", "policy.yaml", "tests/test_steps.py", "README.md",
    "requirements.txt", "pyproject.toml", ".gitignore", ".github/workflows/modelcycle.yml", "Jenkinsfile",
)


def init_project(name: str, folder: str | Path | None = None) -> list[Path]:
    """Write a new project: spec, pipeline, schema, policy, unit tests, README and CI/CD for GitHub Actions and Jenkins.

    The project runs as written: ``python pipelines/training.py`` writes an example dataset into
    ``data/``, after which ``pytest``, ``modelcycle ci`` and ``modelcycle agent --once`` all pass.

    Args:
        name: the project's name, also its model's name: letters, digits, ``-`` and ``_``, starting with a letter.
        folder: where to write it (default: ``./<name>``); it must not exist yet or be empty (a ``.git`` folder is allowed).

    Returns:
        The files written, in the order of ``PROJECT_FILES``.

    Raises:
        InvalidInputError: a bad name, or a folder that already holds files.

    Example:
        >>> import tempfile, pathlib
        >>> files = init_project("churn", pathlib.Path(tempfile.mkdtemp()) / "churn")
        >>> [f.name for f in files][:3]
        ['modelcycle.yaml', 'training.py', 'schema.yaml']
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a valid project name: use letters, digits, '-' and '_', starting with a letter "
            "(at most 64 characters), e.g. churn or fraud-v2")
    root = Path(folder) if folder is not None else Path.cwd() / name
    if root.exists():
        if not root.is_dir():
            raise InvalidInputError(f"{root} is a file; choose another folder with --path, or remove the file")
        present = sorted(p.name for p in root.iterdir() if p.name != ".git")
        if present:
            shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
            raise InvalidInputError(
                f"{root} is not empty ({shown}); modelcycle init writes a new project only into a new or empty folder: "
                "choose another one with --path")
    root.mkdir(parents=True, exist_ok=True)
    texts = render("project", {_TOKEN: name})
    written = []
    for rel in PROJECT_FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts[rel], encoding="utf-8")
        written.append(path)
    (root / "data").mkdir(exist_ok=True)
    return written
